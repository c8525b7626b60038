package store_test

import (
	"errors"
	"io"
	"testing"
	"time"

	"github.com/apptokens/apptokens/store"
	"github.com/apptokens/apptokens/store/storetest"
)

// A restore whose backup stream stalls (an SSH upload that never comes) must not
// hold back other writers: admins and the gate keep working meanwhile.
func TestStalledRestoreDoesNotBlockWriters(t *testing.T) {
	s, err := storetest.OpenWith(storetest.Options{InMemory: true})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() { done <- s.Restore(store.Actor{User: "t"}, pr, false) }()
	time.Sleep(100 * time.Millisecond) // let the restore start reading

	created := make(chan error, 1)
	go func() {
		_, err := s.Create(store.Actor{User: "t"}, store.NewToken{Name: "meanwhile", Access: []store.Access{store.AccessSecurityDirector}})
		created <- err
	}()
	select {
	case err := <-created:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("a create waited for a stalled restore")
	}
	pw.CloseWithError(errors.New("upload interrupted"))
	if err := <-done; err == nil {
		t.Fatal("an interrupted restore succeeded")
	}
	if _, err := s.Get("meanwhile"); err != nil {
		t.Fatalf("the token created meanwhile is gone: %v", err)
	}
}
