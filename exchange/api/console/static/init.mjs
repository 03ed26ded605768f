// The NHS.UK frontend's components (header menu, error summary focus, skip link...).
// The console works without it: every page is plain HTML forms and links.
import { initAll } from "./nhsuk/nhsuk-frontend.min.js";

initAll();
