package badger

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/apptokens/apptokens/store"
)

// Where the Badger files are. A database starts with them in the database
// directory itself. A restore writes a whole new database into a fresh
// subdirectory (data-<random>) and then switches to it by renaming a one-line
// file, dataFile, that names it: the rename is atomic, so the database is
// either all the old data or all the restored data, whatever fails or crashes
// and when. The lock file stays in the database directory, which
// may be a mount point (it is never renamed itself). Open removes what a
// restore cut short or left behind: subdirectories that dataFile does not
// name, and Badger's files in the directory itself once dataFile names one.
const (
	dataFile   = "apptokens.data"
	dataPrefix = "data-"
)

// currentDataDir is where the Badger files of the database in dir are.
func currentDataDir(dir string) (string, error) {
	b, err := os.ReadFile(filepath.Join(dir, dataFile))
	if errors.Is(err, fs.ErrNotExist) {
		return dir, nil
	}
	if err != nil {
		return "", fmt.Errorf("read %s: %w", dataFile, err)
	}
	name := strings.TrimSpace(string(b))
	if !isDataDirName(name) {
		return "", fmt.Errorf("%s in %s names %s, not a data directory", dataFile, dir, quote(name))
	}
	data := filepath.Join(dir, name)
	// Never open an empty database in place of one that went missing.
	if info, err := os.Stat(data); err != nil || !info.IsDir() {
		return "", fmt.Errorf("%s in %s names %s, which is missing: the database cannot be read", dataFile, dir, name)
	}
	return data, nil
}

// setDataDir makes data (dir itself or a subdirectory of it) the database's
// data, atomically and durably.
func setDataDir(dir, data string) error {
	if data == dir {
		if err := os.Remove(filepath.Join(dir, dataFile)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
		return syncDir(dir)
	}
	tmp := filepath.Join(dir, dataFile+".tmp")
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	_, err = f.WriteString(filepath.Base(data) + "\n")
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, filepath.Join(dir, dataFile))
	}
	if err != nil {
		_ = os.Remove(tmp)
		return err
	}
	return syncDir(dir)
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// isBadgerFile reports whether a file name in a data directory is Badger's.
func isBadgerFile(name string) bool {
	switch name {
	case "MANIFEST", "KEYREGISTRY", "DISCARD", "LOCK":
		return true
	}
	ext := filepath.Ext(name)
	return ext == ".sst" || ext == ".vlog" || ext == ".mem"
}

// removeStaleData removes every data directory in dir but current, and the
// Badger files in dir itself when current is a subdirectory. Failures are left
// for the next Open: the data in use is never touched.
func removeStaleData(dir, current string) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return
	}
	for _, e := range entries {
		p := filepath.Join(dir, e.Name())
		switch {
		case e.IsDir() && isDataDirName(e.Name()) && p != current:
			_ = os.RemoveAll(p)
		case !e.IsDir() && current != dir && isBadgerFile(e.Name()):
			_ = os.Remove(p)
		}
	}
}

// isDataDirName reports whether name is one newDataDir makes: data- and 16
// hex digits. Nothing else in the directory is ever removed.
func isDataDirName(name string) bool {
	id, ok := strings.CutPrefix(name, dataPrefix)
	if !ok || len(id) != 16 {
		return false
	}
	_, err := hex.DecodeString(id)
	return err == nil
}

// newDataDir creates a fresh, empty data directory in dir.
func newDataDir(dir string) (string, error) {
	p := filepath.Join(dir, dataPrefix+newHexID())
	if err := os.Mkdir(p, 0o700); err != nil {
		return "", err
	}
	return p, nil
}

func quote(s string) string { return `"` + store.Printable(s) + `"` }

// newHexID is 16 random hex digits.
func newHexID() string {
	var b [8]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(err) // crypto/rand never fails on Linux
	}
	return hex.EncodeToString(b[:])
}
