package badger_test

import (
	"testing"

	"github.com/apptokens/apptokens/store"
	"github.com/apptokens/apptokens/store/storetest"
)

var admin = store.Actor{User: "alice"}

// openDir opens a store over Badger in a fresh temporary directory, closed at
// the end of the test.
func openDir(t testing.TB) (*store.Store, string) {
	t.Helper()
	dir := t.TempDir()
	s, err := storetest.OpenWith(storetest.Options{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s, dir
}

func mustCreate(t testing.TB, s *store.Store, name string, access ...store.Access) store.Created {
	t.Helper()
	if len(access) == 0 {
		access = []store.Access{store.AccessSecurityDirector}
	}
	c, err := s.Create(admin, store.NewToken{Name: name, Description: "test token " + name, Access: access})
	if err != nil {
		t.Fatalf("create %q: %v", name, err)
	}
	return c
}

// liveKV is the size of every live record (key and value, latest version
// only): what the database would hold with no history at all.
func liveKV(s *store.Store) (int64, error) {
	var n int64
	err := s.Engine().View(func(r store.Reader) error {
		it := r.Scan(nil, store.ScanOptions{})
		defer it.Close()
		for it.Next() {
			n += int64(len(it.Key()) + len(it.Value()))
		}
		return it.Err()
	})
	return n, err
}
