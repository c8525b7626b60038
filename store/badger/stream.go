package badger

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"

	bdb "github.com/dgraph-io/badger/v4"

	"github.com/apptokens/apptokens/store"
)

// The Badger backup stream: what `backup` wrote before the engine-independent
// format, and what it writes on this engine until that format lands.

// BackupStream writes every live key of the database to w in Badger's backup
// stream format.
func (e *Engine) BackupStream(w io.Writer) error {
	e.dbMu.RLock()
	defer e.dbMu.RUnlock()
	_, err := e.db.Backup(w, 0)
	return err
}

// ReadStream loads a Badger backup stream from r into a scratch in-memory
// database and runs fn over a snapshot of it. A stream that cannot be read
// (truncated, a frame of an absurd size, not a backup) is refused with an
// error matching store.ErrInvalidBackup.
func ReadStream(r io.Reader, fn func(store.Reader) error) error {
	scratch, err := bdb.Open(badgerOptions(""))
	if err != nil {
		return err
	}
	defer scratch.Close()
	if err := scratch.Load(&frameReader{r: r}, 256); err != nil {
		return fmt.Errorf("%w: cannot read it: %w", store.ErrInvalidBackup, err)
	}
	return scratch.View(func(txn *bdb.Txn) error { return fn(reader{txn}) })
}

// ReadStream is the package's ReadStream, for the domain to find by type
// assertion.
func (e *Engine) ReadStream(r io.Reader, fn func(store.Reader) error) error {
	return ReadStream(r, fn)
}

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

// maxFrame bounds one frame of a backup stream. Badger writes frames of about
// 16 MB (at most ~100 MB) and trusts the size in a frame's header, allocating it
// before reading: a crafted header would make it panic or take all memory.
const maxFrame = 256 << 20

// frameReader passes a backup stream (frames of a little-endian uint64 size and
// that many bytes) on to Badger's Load only once each frame has fully arrived
// and is of a sane size.
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
