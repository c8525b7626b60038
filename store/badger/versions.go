package badger

import (
	"encoding/hex"
	"fmt"

	bdb "github.com/dgraph-io/badger/v4"
)

// Versions returns every live key (hex) with its value and commit version:
// two equal answers mean nothing at all was written in between (tests).
func (e *Engine) Versions() (map[string]string, error) {
	out := map[string]string{}
	e.dbMu.RLock()
	defer e.dbMu.RUnlock()
	err := e.db.View(func(txn *bdb.Txn) error {
		it := txn.NewIterator(bdb.DefaultIteratorOptions)
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			item := it.Item()
			v, err := item.ValueCopy(nil)
			if err != nil {
				return err
			}
			out[hex.EncodeToString(item.Key())] = fmt.Sprintf("%x@%d", v, item.Version())
		}
		return nil
	})
	return out, err
}
