package webhook

import (
	"context"
	"crypto/hmac"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/apptokens/apptokens/store"
)

// memOutbox is an outbox in memory, for the sender's own tests; the store's
// outbox is tested with the sender in internal/gate and cmd.
type memOutbox struct {
	mu     sync.Mutex
	events []store.WebhookEvent
	acked  map[string]int
	fail   bool // reads fail (an engine without quorum)
	failed int  // reads that failed
}

func (o *memOutbox) PendingWebhooks(limit int) ([]store.WebhookEvent, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.fail {
		o.failed++
		return nil, fmt.Errorf("outbox unavailable")
	}
	var out []store.WebhookEvent
	for _, ev := range o.events {
		if o.acked[ev.ID] == 0 && len(out) < limit {
			out = append(out, ev)
		}
	}
	return out, nil
}

func (o *memOutbox) AckWebhook(id string) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.acked == nil {
		o.acked = map[string]int{}
	}
	o.acked[id]++
	return nil
}

func (o *memOutbox) add(ev store.WebhookEvent) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.events = append(o.events, ev)
}

func (o *memOutbox) ackCount(id string) int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.acked[id]
}

// receiver records what it was sent, checking each signature.
type receiver struct {
	t      *testing.T
	secret []byte
	mu     sync.Mutex
	got    map[string]int // delivery ID → times received
	bodies []Payload
	status int // answer; 0: 204
	c      chan Payload
}

func newReceiver(t *testing.T, secret []byte) *receiver {
	return &receiver{t: t, secret: secret, got: map[string]int{}, c: make(chan Payload, 100)}
}

func (rc *receiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		rc.t.Error(err)
		return
	}
	sig := r.Header.Get(HeaderSignature)
	if rc.secret == nil {
		if sig != "" {
			rc.t.Errorf("unsigned sender sent %s %q", HeaderSignature, sig)
		}
	} else if !hmac.Equal([]byte(sig), []byte(Sign(rc.secret, body))) {
		rc.t.Errorf("bad signature %q on %s", sig, body)
	}
	if ct := r.Header.Get("Content-Type"); ct != "application/json" {
		rc.t.Errorf("Content-Type %q", ct)
	}
	var p Payload
	if err := json.Unmarshal(body, &p); err != nil {
		rc.t.Errorf("body %s: %v", body, err)
	}
	rc.mu.Lock()
	status := rc.status
	if status == 0 {
		status = http.StatusNoContent
		rc.got[r.Header.Get(HeaderDelivery)]++
		rc.bodies = append(rc.bodies, p)
	}
	rc.mu.Unlock()
	w.WriteHeader(status)
	if status < 300 {
		rc.c <- p
	}
}

func (rc *receiver) setStatus(code int) {
	rc.mu.Lock()
	rc.status = code
	rc.mu.Unlock()
}

func (rc *receiver) wait(t *testing.T, n int) []Payload {
	t.Helper()
	var out []Payload
	timeout := time.After(20 * time.Second)
	for len(out) < n {
		select {
		case p := <-rc.c:
			out = append(out, p)
		case <-timeout:
			t.Fatalf("received %d of %d events", len(out), n)
		}
	}
	return out
}

func start(t *testing.T, cfg Config) *Sender {
	t.Helper()
	if cfg.MinBackoff == 0 {
		cfg.MinBackoff, cfg.MaxBackoff = 5*time.Millisecond, 40*time.Millisecond
	}
	if cfg.Poll == 0 {
		cfg.Poll = 10 * time.Millisecond
	}
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = s.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	return s
}

func events(n int) []store.WebhookEvent {
	at := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	out := make([]store.WebhookEvent, n)
	for i := range out {
		out[i] = store.WebhookEvent{ID: fmt.Sprint("ev-", i), Event: "token.expiring", Token: fmt.Sprint("tok-", i),
			Hint: "aptk_…ab1" + fmt.Sprint(i%10), At: at.Add(time.Duration(i) * time.Hour), Reason: "expires in 7 days"}
	}
	return out
}

// Every receiver gets each event exactly once, in order, signed, with the
// contract's fields; each event is acked once, after both accepted it.
func TestDeliversEachEventOnceSigned(t *testing.T) {
	secret := []byte("s3cret key")
	a, b := newReceiver(t, secret), newReceiver(t, secret)
	sa, sb := httptest.NewServer(a), httptest.NewServer(b)
	defer sa.Close()
	defer sb.Close()
	out := &memOutbox{}
	evs := events(5)
	for _, ev := range evs {
		out.add(ev)
	}
	reg := prometheus.NewRegistry()
	start(t, Config{Outbox: out, URLs: []string{sa.URL + "/hook", sb.URL}, Secret: secret, Metrics: reg})
	for _, rc := range []*receiver{a, b} {
		got := rc.wait(t, len(evs))
		for i, p := range got {
			want := Payload{Event: evs[i].Event, Token: evs[i].Token, Hint: evs[i].Hint, At: evs[i].At, Reason: evs[i].Reason}
			if p != want {
				t.Errorf("event %d: got %+v, want %+v", i, p, want)
			}
		}
	}
	waitFor(t, func() bool { return out.ackCount(evs[len(evs)-1].ID) > 0 })
	// More polls: nothing is sent again.
	time.Sleep(50 * time.Millisecond)
	for _, rc := range []*receiver{a, b} {
		rc.mu.Lock()
		for _, ev := range evs {
			if n := rc.got[ev.ID]; n != 1 {
				t.Errorf("%s received %d times", ev.ID, n)
			}
		}
		rc.mu.Unlock()
	}
	for _, ev := range evs {
		if n := out.ackCount(ev.ID); n != 1 {
			t.Errorf("%s acked %d times", ev.ID, n)
		}
	}
	if n := deliveries(t, reg, "delivered"); n != 10 {
		t.Errorf("deliveries delivered = %v, want 10", n)
	}
}

// deliveries is apptokens_webhook_deliveries_total{result} as reg has it now.
func deliveries(t *testing.T, reg *prometheus.Registry, result string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "apptokens_webhook_deliveries_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "result" && l.GetValue() == result {
					return m.GetCounter().GetValue()
				}
			}
		}
	}
	t.Fatalf("no apptokens_webhook_deliveries_total{result=%q}", result)
	return 0
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 20s")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// A receiver that is down gets the event once it is back, on the same
// address; the one that is up gets it meanwhile; the event is acked only
// after both.
func TestReceiverDownGetsEventWhenBack(t *testing.T) {
	up := newReceiver(t, nil)
	su := httptest.NewServer(up)
	defer su.Close()
	// Reserve an address, then close it: connections are refused.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()

	out := &memOutbox{}
	ev := events(1)[0]
	out.add(ev)
	reg := prometheus.NewRegistry()
	start(t, Config{Outbox: out, URLs: []string{su.URL, "http://" + addr + "/hook"}, Metrics: reg})
	up.wait(t, 1)
	// The down receiver has been tried and failed, more than once (backoff).
	waitFor(t, func() bool { return deliveries(t, reg, "failed") >= 2 })
	if out.ackCount(ev.ID) != 0 {
		t.Fatal("event acked before every receiver accepted it")
	}

	back := newReceiver(t, nil)
	ln, err = net.Listen("tcp", addr)
	if err != nil {
		t.Skipf("the address was taken meanwhile: %v", err)
	}
	sb := httptest.NewUnstartedServer(back)
	sb.Listener.Close()
	sb.Listener = ln
	sb.Start()
	defer sb.Close()
	got := back.wait(t, 1)
	if got[0].Token != ev.Token {
		t.Errorf("got %+v", got[0])
	}
	waitFor(t, func() bool { return out.ackCount(ev.ID) == 1 })
	up.mu.Lock()
	if n := up.got[ev.ID]; n != 1 {
		t.Errorf("the receiver that was up got the event %d times", n)
	}
	up.mu.Unlock()
}

// A receiver answering an error status is tried again until it accepts.
func TestRejectedDeliveryIsRetried(t *testing.T) {
	rc := newReceiver(t, nil)
	rc.setStatus(http.StatusInternalServerError)
	srv := httptest.NewServer(rc)
	defer srv.Close()
	out := &memOutbox{}
	ev := events(1)[0]
	out.add(ev)
	reg := prometheus.NewRegistry()
	start(t, Config{Outbox: out, URLs: []string{srv.URL}, Metrics: reg})
	waitFor(t, func() bool { return deliveries(t, reg, "rejected") >= 2 })
	if out.ackCount(ev.ID) != 0 {
		t.Fatal("a rejected event was acked")
	}
	rc.setStatus(0)
	rc.wait(t, 1)
	waitFor(t, func() bool { return out.ackCount(ev.ID) == 1 })
}

// The backoff doubles from the least wait up to the cap: with a receiver
// that refuses everything, tries are spaced, not a busy loop.
func TestBackoffIsCapped(t *testing.T) {
	var mu sync.Mutex
	var tries []time.Time
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		mu.Lock()
		tries = append(tries, time.Now())
		mu.Unlock()
		w.WriteHeader(http.StatusServiceUnavailable)
	}))
	defer srv.Close()
	out := &memOutbox{}
	out.add(events(1)[0])
	start(t, Config{Outbox: out, URLs: []string{srv.URL}, MinBackoff: 20 * time.Millisecond, MaxBackoff: 80 * time.Millisecond, Poll: time.Millisecond})
	waitFor(t, func() bool { mu.Lock(); defer mu.Unlock(); return len(tries) >= 6 })
	mu.Lock()
	defer mu.Unlock()
	// Gaps: ≥20, ≥40, ≥80, ≥80, ≥80 ms (never less than the backoff).
	want := []time.Duration{20, 40, 80, 80, 80}
	for i, w := range want {
		if gap := tries[i+1].Sub(tries[i]); gap < w*time.Millisecond {
			t.Errorf("try %d came %v after the one before, want ≥ %v", i+2, gap, w*time.Millisecond)
		}
	}
}

func TestUnsignedWithoutSecret(t *testing.T) {
	rc := newReceiver(t, nil) // checks that no signature header comes
	srv := httptest.NewServer(rc)
	defer srv.Close()
	out := &memOutbox{}
	out.add(events(1)[0])
	start(t, Config{Outbox: out, URLs: []string{srv.URL}})
	rc.wait(t, 1)
}

func TestReadSecret(t *testing.T) {
	dir := t.TempDir()
	empty := filepath.Join(dir, "empty")
	if err := os.WriteFile(empty, []byte(" \n"), 0o600); err != nil {
		t.Fatal(err)
	}
	good := filepath.Join(dir, "good")
	if err := os.WriteFile(good, []byte("k3y\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadSecret(empty); err == nil || !strings.Contains(err.Error(), "is empty") {
		t.Errorf("empty file: %v", err)
	}
	if _, err := ReadSecret(filepath.Join(dir, "missing")); err == nil || strings.Contains(err.Error(), "\n") {
		t.Errorf("missing file: %v", err)
	}
	if k, err := ReadSecret(good); err != nil || string(k) != "k3y" {
		t.Errorf("good file: %q %v", k, err)
	}
}

func TestParseURL(t *testing.T) {
	for _, bad := range []string{"", "example.com/hook", "ftp://example.com/", "http://", "://x"} {
		if _, err := ParseURL(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
	if _, err := ParseURL("https://user:pw@example.com/hook"); err != nil {
		t.Error(err)
	}
	_, err := ParseURL("ftp://user:pw@example.com/")
	if err == nil || strings.Contains(err.Error(), "pw") {
		t.Errorf("error shows the password: %v", err)
	}
}

// The signature is the hex HMAC-SHA256 of the body (a known vector).
func TestSign(t *testing.T) {
	// RFC 4231 test case 2.
	got := Sign([]byte("Jefe"), []byte("what do ya want for nothing?"))
	if want := "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"; got != want {
		t.Errorf("Sign = %s, want %s", got, want)
	}
}

// An outbox that cannot be read for a while makes no receiver get an event
// again that it already accepted.
func TestOutboxErrorKeepsDeliveries(t *testing.T) {
	a, b := newReceiver(t, nil), newReceiver(t, nil)
	b.setStatus(http.StatusInternalServerError)
	sa, sb := httptest.NewServer(a), httptest.NewServer(b)
	defer sa.Close()
	defer sb.Close()
	out := &memOutbox{}
	ev := events(1)[0]
	out.add(ev)
	start(t, Config{Outbox: out, URLs: []string{sa.URL, sb.URL}})
	a.wait(t, 1)
	out.mu.Lock()
	out.fail = true
	out.mu.Unlock()
	waitFor(t, func() bool { out.mu.Lock(); defer out.mu.Unlock(); return out.failed >= 4 })
	out.mu.Lock()
	out.fail = false
	out.mu.Unlock()
	b.setStatus(0)
	b.wait(t, 1)
	waitFor(t, func() bool { return out.ackCount(ev.ID) == 1 })
	time.Sleep(50 * time.Millisecond) // more polls: nothing more is sent
	a.mu.Lock()
	defer a.mu.Unlock()
	if n := a.got[ev.ID]; n != 1 {
		t.Errorf("the receiver that had accepted the event got it %d times", n)
	}
}

// A worker whose list was read before another worker acked an event does not
// send that event again to its receiver, which had accepted it already.
func TestAckedEventNotSentAgainFromAnOlderList(t *testing.T) {
	evs := events(2) // ev-0 will come first in the outbox, ev-1 is there first
	release, held := make(chan struct{}), make(chan struct{}, 1)
	var mu sync.Mutex
	gotA := map[string]int{}
	a := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id := r.Header.Get(HeaderDelivery)
		if id == evs[0].ID {
			held <- struct{}{}
			<-release // A's worker is held up here, its list in hand
		}
		mu.Lock()
		gotA[id]++
		mu.Unlock()
	}))
	defer a.Close()
	defer func() {
		select {
		case <-release:
		default:
			close(release)
		}
	}()
	b := newReceiver(t, nil)
	b.setStatus(http.StatusServiceUnavailable)
	sb := httptest.NewServer(b)
	defer sb.Close()
	out := &memOutbox{}
	out.add(evs[1])
	start(t, Config{Outbox: out, URLs: []string{a.URL, sb.URL}})
	waitFor(t, func() bool { mu.Lock(); defer mu.Unlock(); return gotA[evs[1].ID] == 1 })
	// ev-0 goes before ev-1: A's next list is [ev-0, ev-1], and it waits on ev-0.
	out.mu.Lock()
	out.events = append([]store.WebhookEvent{evs[0]}, out.events...)
	out.mu.Unlock()
	select { // A's worker read the list and waits on ev-0
	case <-held:
	case <-time.After(20 * time.Second):
		t.Fatal("A was not sent ev-0")
	}
	b.setStatus(0)
	b.wait(t, 2)
	waitFor(t, func() bool { return out.ackCount(evs[1].ID) == 1 })
	close(release)
	waitFor(t, func() bool { return out.ackCount(evs[0].ID) == 1 })
	time.Sleep(50 * time.Millisecond)
	mu.Lock()
	defer mu.Unlock()
	if n := gotA[evs[1].ID]; n != 1 {
		t.Errorf("A got %s %d times", evs[1].ID, n)
	}
}
