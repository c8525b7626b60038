package cli

import (
	"bytes"
	"encoding/json"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/apptokens/apptokens/store"
	"github.com/apptokens/apptokens/store/storetest"
)

// The streamed `list --json` is byte for byte the indented array it always was.
func TestListJSONStreamIsTheSameArray(t *testing.T) {
	dir := t.TempDir()
	for _, n := range []int{0, 1, 3} {
		switch n {
		case 1:
			mustRun(t, dir, "seed", "--tokens", "1")
		case 3:
			mustRun(t, dir, "create", "--name", "B-2", "--access", "security-director", "--description", "two\nlines \"quoted\" <b>")
			mustRun(t, dir, "create", "--name", "a-1", "--access", "third-party-feeds,security-director")
		}
		out := mustRun(t, dir, "list", "--json")
		var rows []json.RawMessage
		if err := json.Unmarshal([]byte(out), &rows); err != nil {
			t.Fatalf("%d tokens: %v\n%s", n, err, out)
		}
		if len(rows) != n {
			t.Fatalf("%d rows, want %d", len(rows), n)
		}
		var want bytes.Buffer
		if err := writeJSON(&want, rows); err != nil {
			t.Fatal(err)
		}
		if out != want.String() {
			t.Fatalf("%d tokens: streamed\n%s\nwant\n%s", n, out, want.String())
		}
	}
}

// heapSampler is stdout that measures the live heap (after a GC) at every
// write: what the command holds while it prints. It keeps only counts of what
// was printed, so that it holds nothing itself.
type heapSampler struct {
	peak          uint64
	bytes, braces int
}

func (h *heapSampler) Write(p []byte) (int, error) {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	h.peak = max(h.peak, ms.HeapAlloc)
	h.bytes += len(p)
	h.braces += bytes.Count(p, []byte("{"))
	return len(p), nil
}

// `list --json` streams: what it holds while printing does not grow with the
// tokens (issue 8: 100,000 tokens took 225 MiB). 10,000 tokens print about
// 2.4 MB of JSON; the command may hold a quarter of that at any time (it held
// about twice that before).
func TestListJSONStreams(t *testing.T) {
	const n = 10000
	dir := t.TempDir()
	st, err := storetest.OpenWith(storetest.Options{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	if err := SeedLoad(st, store.Actor{User: "tester"}, time.Now(), n, 0); err != nil {
		t.Fatal(err)
	}
	out := &heapSampler{}
	root := NewRoot(Env{
		Stdin: strings.NewReader(""), Stdout: out, Stderr: &bytes.Buffer{},
		Actor: store.Actor{User: "tester"},
		Open:  func(string) (*store.Store, func(), error) { return st, func() {}, nil },
	})
	root.SetArgs([]string{"--db", dir, "list", "--json"})
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	base := ms.HeapAlloc
	if err := root.Execute(); err != nil {
		t.Fatal(err)
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	printed := uint64(out.bytes)
	if out.braces != n { // seeded descriptions hold no brace
		t.Fatalf("printed %d tokens, want %d", out.braces, n)
	}
	held := int64(out.peak) - int64(base)
	t.Logf("%d tokens: %d KiB of JSON; at most %d KiB held besides it while printing", n, printed>>10, held>>10)
	if held > int64(printed/4) {
		t.Fatalf("list --json held %d KiB while printing %d KiB: it does not stream", held>>10, printed>>10)
	}
}
