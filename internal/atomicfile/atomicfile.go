// Package atomicfile writes a file so that whoever reads it sees the old
// content or the new, never half of one: the agent's id, the sealed
// secrets of `oxbroker secret set`, the address file a test polls for.
package atomicfile

import (
	"io/fs"
	"os"
	"path/filepath"
)

// Write writes data to a new file beside path (so that the rename stays
// on one file system), gives it perm, flushes it to disk and renames it
// over path. On failure nothing is left behind and path is unchanged.
// The folder must exist.
func Write(path string, data []byte, perm fs.FileMode) (err error) {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*.tmp")
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			os.Remove(f.Name())
		}
	}()
	_, err = f.Write(data)
	if err == nil {
		err = f.Chmod(perm)
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	return os.Rename(f.Name(), path)
}
