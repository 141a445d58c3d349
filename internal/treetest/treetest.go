//go:build unix

// Package treetest helps tests prove that an install touched nothing it
// should not: a listing of a directory tree with every attribute an
// installer could change, and a diff of two listings. It also builds the
// small tar archives such tests install. Test code only.
package treetest

import (
	"archive/tar"
	"bytes"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
)

// Listing maps every path at or below dir, except the subtrees skip names,
// to its type and mode, link count, size, modification time, owner and
// symlink target: any change an installer could make shows.
func Listing(dir string, skip ...string) (map[string]string, error) {
	out := map[string]string{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if slices.Contains(skip, p) {
			return filepath.SkipDir
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		st := fi.Sys().(*syscall.Stat_t)
		desc := fmt.Sprintf("%v nlink=%d size=%d mtime=%d uid=%d", fi.Mode(), st.Nlink, fi.Size(), fi.ModTime().UnixNano(), st.Uid)
		if fi.Mode()&fs.ModeSymlink != 0 {
			link, _ := os.Readlink(p)
			desc += " -> " + link
		}
		out[p] = desc
		return nil
	})
	return out, err
}

// Diff describes how after differs from before, one line per path, or
// returns "" when they are equal.
func Diff(before, after map[string]string) string {
	var b strings.Builder
	for _, p := range slices.Sorted(maps.Keys(before)) {
		if a, ok := after[p]; !ok {
			fmt.Fprintf(&b, "%s removed (was %s)\n", p, before[p])
		} else if a != before[p] {
			fmt.Fprintf(&b, "%s changed: %s -> %s\n", p, before[p], a)
		}
	}
	for _, p := range slices.Sorted(maps.Keys(after)) {
		if _, ok := before[p]; !ok {
			fmt.Fprintf(&b, "%s appeared: %s\n", p, after[p])
		}
	}
	return b.String()
}

// Tar returns a tar archive of regular files (name → content), in name
// order.
func Tar(files map[string]string) ([]byte, error) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, name := range slices.Sorted(maps.Keys(files)) {
		body := files[name]
		if err := tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: int64(len(body)), Typeflag: tar.TypeReg}); err != nil {
			return nil, err
		}
		if _, err := tw.Write([]byte(body)); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}
