package badger_test

import (
	"testing"

	"github.com/apptokens/apptokens/store"
	"github.com/apptokens/apptokens/store/badger"
	"github.com/apptokens/apptokens/store/enginetest"
)

// TestEngineBatchReads is the conformance suite's GetMany and ScanMany on
// Badger.
func TestEngineBatchReads(t *testing.T) {
	enginetest.RunBatchReads(t, func(t *testing.T) store.Engine {
		e, err := badger.Open(badger.Options{InMemory: true})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = e.Close() })
		return e
	})
}
