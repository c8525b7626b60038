package badger

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	bdb "github.com/dgraph-io/badger/v4"
)

// ReadLegacyBackup reads a backup written by the previous release of
// apptokens, whose `backup` was Badger's own stream (DB.Backup: frames of a
// little-endian uint64 size and a protobuf KVList, every version of every
// key), and calls fn with each key that was live in it and its value, in key
// order; an error from fn stops it and is returned. It is a
// store.LegacyReader.
//
// The stream is loaded by Badger itself (DB.Load) into a scratch in-memory
// database, which settles versions, deletions and expiry as Badger does, and
// is gone when it returns. A frame is passed on only once it has fully
// arrived and is at most maxFrame bytes: Load trusts a frame's size and
// allocates it before reading, so a crafted size would take all memory. A
// stream that is not one is an error saying what is wrong with it.
func ReadLegacyBackup(r io.Reader, fn func(key, value []byte) error) error {
	db, err := bdb.Open(badgerOptions(""))
	if err != nil {
		return fmt.Errorf("open a scratch database: %w", err)
	}
	defer db.Close()
	if err := db.Load(&frameReader{r: r}, 256); err != nil {
		return err
	}
	return db.View(func(txn *bdb.Txn) error {
		it := txn.NewIterator(bdb.DefaultIteratorOptions)
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			item := it.Item()
			v, err := item.ValueCopy(nil)
			if err != nil {
				return err
			}
			if err := fn(item.KeyCopy(nil), v); err != nil {
				return err
			}
		}
		return nil
	})
}

// maxFrame bounds one frame of a backup stream. Badger writes frames of about
// 16 MB (at most ~100 MB).
const maxFrame = 256 << 20

// frameReader passes a backup stream on to Badger's Load only once each frame
// has fully arrived and is of a sane size.
type frameReader struct {
	r    io.Reader
	next bytes.Buffer // the frame being passed on
}

func (f *frameReader) Read(p []byte) (int, error) {
	if f.next.Len() == 0 {
		var hdr [8]byte
		if _, err := io.ReadFull(f.r, hdr[:]); err != nil {
			if errors.Is(err, io.EOF) {
				return 0, io.EOF
			}
			return 0, fmt.Errorf("truncated frame header: %w", err)
		}
		size := binary.LittleEndian.Uint64(hdr[:])
		if size > maxFrame {
			return 0, fmt.Errorf("frame of %d bytes (at most %d)", size, maxFrame)
		}
		f.next.Reset()
		f.next.Write(hdr[:])
		// CopyN grows the buffer as bytes arrive, not by the size announced.
		if n, err := io.CopyN(&f.next, f.r, int64(size)); err != nil {
			return 0, fmt.Errorf("truncated frame: %d of %d bytes: %w", n, size, err)
		}
	}
	return f.next.Read(p)
}
