package badger_test

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"testing"

	"github.com/apptokens/apptokens/internal/secret"
	"github.com/apptokens/apptokens/store"
	"github.com/apptokens/apptokens/store/storetest"
)

// readDir returns the raw bytes of every regular file under dir.
func readDir(t *testing.T, dir string) map[string][]byte {
	t.Helper()
	files := map[string][]byte{}
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		files[path] = b
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return files
}

// TestSecretNeverOnDisk greps the raw database directory for every secret, its
// base62 body alone and its random part alone: while the store is open (the
// write-ahead log holds values uncompressed) and after it is closed (compressed
// tables; random text stays literal there).
// A marker written in the descriptions must be found, or the grep proves nothing.
func TestSecretNeverOnDisk(t *testing.T) {
	dir := t.TempDir()
	s, err := storetest.OpenWith(storetest.Options{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	var mark [12]byte
	_, _ = rand.Read(mark[:])
	marker := "marker-" + hex.EncodeToString(mark[:])

	var secrets []secret.Token
	for i := range 60 {
		c, err := s.Create(admin, store.NewToken{
			Name:        fmt.Sprintf("disk-%02d", i),
			Description: marker,
			Access:      []store.Access{store.AccessSecurityDirector, store.AccessThirdPartyFeeds},
		})
		if err != nil {
			t.Fatal(err)
		}
		secrets = append(secrets, c.Secret)
	}
	// Touch every write path once more: edit, usage, block, deactivate, delete.
	d := marker + " edited"
	if _, err := s.Edit(admin, "disk-00", store.Edit{Description: &d}); err != nil {
		t.Fatal(err)
	}
	toks, err := s.List()
	if err != nil {
		t.Fatal(err)
	}
	now := s.Now()
	if _, err := s.RecordUsage([]store.UsageDelta{{TokenID: toks[1].ID, IP: "203.0.113.5", FirstUsedAt: now, LastUsedAt: now, Allowed: 1}}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.SetBlocked(admin, "disk-02", []string{"203.0.113.6"}, true); err != nil {
		t.Fatal(err)
	}
	if _, err := s.SetActive(admin, []string{"disk-03"}, false); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Delete(admin, []string{"disk-04"}); err != nil {
		t.Fatal(err)
	}
	var backup bytes.Buffer
	if err := s.Backup(&backup); err != nil {
		t.Fatal(err)
	}

	check := func(when string, files map[string][]byte) {
		t.Helper()
		found := false
		for path, b := range files {
			found = found || bytes.Contains(b, []byte(marker))
			for _, sec := range secrets {
				plain := sec.Reveal()
				for _, needle := range []string{plain, plain[len(secret.Prefix):], plain[len(secret.Prefix) : len(secret.Prefix)+secret.RandomLen]} {
					if bytes.Contains(b, []byte(needle)) {
						t.Fatalf("%s: %s holds a secret (%d bytes of it)", when, path, len(needle))
					}
				}
			}
		}
		if !found {
			t.Fatalf("%s: the description marker is in no file: the search cannot see stored values", when)
		}
	}
	check("store open", readDir(t, dir))
	check("backup", map[string][]byte{"backup": backup.Bytes()})
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	check("store closed", readDir(t, dir))
}
