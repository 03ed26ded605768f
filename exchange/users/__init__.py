"""People who sign in to the console: IG leads, DCOs and administrators."""
