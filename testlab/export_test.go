package testlab

// FileTail exposes fileTail to the package's external tests.
var FileTail = fileTail
