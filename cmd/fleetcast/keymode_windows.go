package main

import (
	"io"
	"io/fs"
)

// warnKeyFileMode does nothing on Windows, where Unix permission bits say
// nothing about who may read a file (that is its ACL).
func warnKeyFileMode(io.Writer, string, fs.FileMode) {}
