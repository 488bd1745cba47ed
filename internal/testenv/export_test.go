package testenv

// HashDir exposes hashDir to the external tests.
var HashDir = hashDir
