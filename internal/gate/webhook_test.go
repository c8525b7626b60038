package gate

import (
	"context"
	"crypto/hmac"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"sync"
	"testing"
	"time"

	"github.com/apptokens/apptokens/internal/webhook"
	"github.com/apptokens/apptokens/store"
	"github.com/apptokens/apptokens/store/badger"
)

// openWebhookStore is a store in memory that queues webhook events, as serve
// opens it with --webhook.
func openWebhookStore(t *testing.T, now func() time.Time) *store.Store {
	t.Helper()
	eng, err := badger.Open(badger.Options{InMemory: true})
	if err != nil {
		t.Fatal(err)
	}
	s, err := store.New(eng, store.Options{Now: now, Webhooks: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// hookReceiver is a webhook receiver that checks each signature and passes
// the events on; hold, while set, keeps every request waiting.
type hookReceiver struct {
	t      *testing.T
	key    []byte
	events chan webhook.Payload
	mu     sync.Mutex
	seen   map[string]int // X-Apptokens-Delivery → deliveries
	hold   chan struct{}
}

func newHookReceiver(t *testing.T, key []byte) *hookReceiver {
	return &hookReceiver{t: t, key: key, events: make(chan webhook.Payload, 100), seen: map[string]int{}}
}

func (h *hookReceiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h.mu.Lock()
	hold := h.hold
	h.mu.Unlock()
	if hold != nil {
		select {
		case <-hold:
		case <-r.Context().Done():
			return
		}
	}
	body, err := io.ReadAll(r.Body)
	if err != nil {
		h.t.Error(err)
		return
	}
	if got := r.Header.Get(webhook.HeaderSignature); !hmac.Equal([]byte(got), []byte(webhook.Sign(h.key, body))) {
		h.t.Errorf("signature %q does not match the body %s", got, body)
	}
	var p webhook.Payload
	if err := json.Unmarshal(body, &p); err != nil {
		h.t.Errorf("body %s: %v", body, err)
	}
	h.mu.Lock()
	h.seen[r.Header.Get(webhook.HeaderDelivery)]++
	h.mu.Unlock()
	w.WriteHeader(http.StatusOK)
	h.events <- p
}

func (h *hookReceiver) next(t *testing.T) webhook.Payload {
	t.Helper()
	select {
	case p := <-h.events:
		return p
	case <-time.After(20 * time.Second):
		t.Fatal("no webhook event within 20s")
	}
	return webhook.Payload{}
}

func startSender(t *testing.T, cfg webhook.Config) {
	t.Helper()
	cfg.Poll, cfg.MinBackoff, cfg.MaxBackoff = 10*time.Millisecond, 5*time.Millisecond, 50*time.Millisecond
	snd, err := webhook.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = snd.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
}

// A token reported at /revoke reaches the webhook receiver once, signed, as
// token.revoked_by_report with its name and hint; the outbox is empty after.
func TestGateRevokeSendsWebhook(t *testing.T) {
	s := openWebhookStore(t, nil)
	leaked := create(t, s, "leaked", store.AccessSecurityDirector)
	tok, err := s.Get("leaked")
	if err != nil {
		t.Fatal(err)
	}
	g := newGate(t, Config{Store: s})
	srv := httptest.NewServer(g.Handler())
	t.Cleanup(srv.Close)
	key := []byte("hook key")
	rc := newHookReceiver(t, key)
	hook := httptest.NewServer(rc)
	t.Cleanup(hook.Close)
	startSender(t, webhook.Config{Outbox: s, URLs: []string{hook.URL}, Secret: key})

	if a := report(t, srv.Client(), srv.URL, "token="+url.QueryEscape(leaked), ""); a.status != 200 {
		t.Fatalf("report: %d", a.status)
	}
	p := rc.next(t)
	if p.Event != store.EventRevokedByReport || p.Token != "leaked" || p.Hint != tok.Hint || p.At.IsZero() || p.Reason == "" {
		t.Errorf("event %+v", p)
	}
	waitFor(t, 10*time.Second, "the outbox emptied", func() bool {
		ev, err := s.PendingWebhooks(0)
		return err == nil && len(ev) == 0
	})
	rc.mu.Lock()
	defer rc.mu.Unlock()
	for id, n := range rc.seen {
		if n != 1 {
			t.Errorf("event %s delivered %d times", id, n)
		}
	}
}

// A receiver that hangs and one that is down do not hold /auth up: while the
// sender waits on them, requests are answered; each receiver gets the events
// once it answers again.
func TestGateAuthNotHeldByWebhooks(t *testing.T) {
	s := openWebhookStore(t, nil)
	ok := create(t, s, "in-use", store.AccessSecurityDirector)
	var reported []string
	for _, name := range []string{"leak-1", "leak-2"} {
		reported = append(reported, create(t, s, name, store.AccessSecurityDirector))
	}
	g := newGate(t, Config{Store: s})
	srv := httptest.NewServer(g.Handler())
	t.Cleanup(srv.Close)
	key := []byte("k")
	hung := newHookReceiver(t, key)
	hung.hold = make(chan struct{})
	hungSrv := httptest.NewServer(hung)
	t.Cleanup(hungSrv.Close)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	downAddr := ln.Addr().String()
	ln.Close() // down: connections refused
	startSender(t, webhook.Config{Outbox: s, URLs: []string{hungSrv.URL, "http://" + downAddr + "/hook"}, Secret: key})

	for _, sec := range reported {
		if a := report(t, srv.Client(), srv.URL, "token="+sec, ""); a.status != 200 {
			t.Fatalf("report: %d", a.status)
		}
	}
	// The sender is now waiting on the hung receiver and retrying the down
	// one: /auth answers all the same.
	for range 50 {
		if a := call(t, srv.Client(), srv.URL+"/auth", "Bearer "+ok); a.status != 200 {
			t.Fatalf("/auth while the receivers are out: %d", a.status)
		}
	}
	for _, sec := range reported {
		wantDenial(t, call(t, srv.Client(), srv.URL+"/auth", "Bearer "+sec), 401, "inactive_token", challengeInvalidToken)
	}
	// Both come back.
	back := newHookReceiver(t, key)
	ln, err = net.Listen("tcp", downAddr)
	if err != nil {
		t.Skipf("the address was taken meanwhile: %v", err)
	}
	backSrv := httptest.NewUnstartedServer(back)
	backSrv.Listener.Close()
	backSrv.Listener = ln
	backSrv.Start()
	t.Cleanup(backSrv.Close)
	hung.mu.Lock()
	close(hung.hold)
	hung.hold = nil
	hung.mu.Unlock()
	for _, rc := range []*hookReceiver{hung, back} {
		got := map[string]bool{}
		for range reported {
			p := rc.next(t)
			if p.Event != store.EventRevokedByReport {
				t.Errorf("event %+v", p)
			}
			got[p.Token] = true
		}
		if !got["leak-1"] || !got["leak-2"] {
			t.Errorf("events for %v", got)
		}
	}
	waitFor(t, 10*time.Second, "the outbox emptied", func() bool {
		ev, err := s.PendingWebhooks(0)
		return err == nil && len(ev) == 0
	})
}

// stuckOutbox always has the same events pending: a sender never runs out of
// work while its receiver is down.
type stuckOutbox struct{ events []store.WebhookEvent }

func (o stuckOutbox) PendingWebhooks(int) ([]store.WebhookEvent, error) { return o.events, nil }
func (stuckOutbox) AckWebhook(string) error                             { return nil }

// BenchmarkGateHTTPWebhookDown is BenchmarkGateHTTP's allowed request while a
// webhook sender keeps failing on a receiver that is down (connections
// refused, retried every millisecond) and waits on one that never answers:
// beside BenchmarkGateHTTP/allow, it shows that /auth does not wait for
// webhooks (the sender is never on the request path).
func BenchmarkGateHTTPWebhookDown(b *testing.B) {
	setupBench(b)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	down := ln.Addr().String()
	ln.Close()
	hang := make(chan struct{})
	hung := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-hang:
		case <-r.Context().Done():
		}
	}))
	defer hung.Close()
	defer close(hang)
	events := make([]store.WebhookEvent, 100)
	for i := range events {
		events[i] = store.WebhookEvent{ID: fmt.Sprint(i), Event: store.EventExpiring, Token: fmt.Sprint("tok-", i), At: time.Now()}
	}
	snd, err := webhook.New(webhook.Config{
		Outbox: stuckOutbox{events}, URLs: []string{"http://" + down + "/hook", hung.URL},
		Secret: []byte("k"), Poll: time.Millisecond, MinBackoff: time.Millisecond, MaxBackoff: time.Millisecond,
	})
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = snd.Run(ctx); close(done) }()
	defer func() { cancel(); <-done }()

	h := benchGate.g.Handler()
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		r := httptest.NewRequest(http.MethodGet, "/auth", nil)
		r.Header.Set("Authorization", benchGate.authz[0])
		for pb.Next() {
			w := httptest.NewRecorder()
			h.ServeHTTP(w, r)
			if w.Code != http.StatusOK {
				b.Errorf("status %d", w.Code)
				return
			}
		}
	})
}
