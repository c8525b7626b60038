package common

import (
	"errors"
	"testing"
)

// TestLoaderCycle: one load at a time, a change during a load makes exactly
// one more, and after a failure changes wait for the retry.
func TestLoaderCycle(t *testing.T) {
	var l Loader
	if !l.Changed() {
		t.Fatal("an idle screen must load on a change")
	}
	l.Start()
	for range 2 {
		if l.Changed() {
			t.Fatal("a change during a load must wait for it")
		}
	}
	if _, again := l.Done("x", nil, nil); !again {
		t.Fatal("changes during a load must load once more")
	}
	l.Start()
	if _, again := l.Done("x", nil, nil); again {
		t.Fatal("no change came: no second load")
	}

	l.Start()
	l.Changed()
	cmd, again := l.Done("the audit log", errors.New("boom"), struct{}{})
	if cmd == nil || again {
		t.Fatalf("a failed load must schedule a retry (cmd %v) and not load again at once (%v)", cmd != nil, again)
	}
	if l.Changed() {
		t.Fatal("a change while a retry is due must wait for the retry")
	}
	if !l.Retry() {
		t.Fatal("the retry must load")
	}
	if l.Retry() {
		t.Fatal("a second retry message must not load again")
	}
	if l.Loading() {
		t.Fatal("Loading before Start")
	}
}
