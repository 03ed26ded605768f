// Loaded synchronously first thing in <body>: tells the NHS.UK frontend CSS that its
// JavaScript will run (what the stock template does with an inline script, which the
// console's Content-Security-Policy forbids).
document.body.className +=
  " js-enabled" + ("noModule" in HTMLScriptElement.prototype ? " nhsuk-frontend-supported" : "");
