package atomicfile

// syncDir does nothing on Windows: directories cannot be opened for fsync
// there, and NTFS journals renames.
func syncDir(string) error { return nil }
