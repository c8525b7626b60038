// Package webhook delivers the store's lifecycle events (token.expiring,
// token.inactivating, token.expired, token.inactivated, token.deleted,
// token.revoked_by_report) to the receivers given with serve --webhook.
//
// The store keeps the events in an outbox; a Sender reads it, POSTs each event
// to every receiver as JSON {"event","token","hint","at","reason"}, signed with
// an HMAC-SHA256 of the body in X-Apptokens-Signature when a secret is set,
// retries a receiver that fails with exponential backoff (capped), and acks an
// event in the store once every receiver has accepted it (answered 2xx). It
// runs on its own goroutines, never on a request's path: a receiver that is
// down or slow delays only its own deliveries. Run it on one node of a
// cluster (the elected one), so that each event is sent once.
package webhook

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/apptokens/apptokens/store"
)

// Defaults of Config.
const (
	DefaultPoll       = time.Second
	DefaultMinBackoff = time.Second
	DefaultMaxBackoff = 5 * time.Minute
	DefaultTimeout    = 10 * time.Second
	// MaxURLs is the most receivers a Sender delivers to.
	MaxURLs = 64
)

// Headers of a delivery.
const (
	// HeaderSignature is "sha256=" and the hex HMAC-SHA256 of the body, keyed
	// by the secret; absent when no secret is set.
	HeaderSignature = "X-Apptokens-Signature"
	// HeaderDelivery is the event's ID in the outbox: the same on every
	// retry, so that a receiver can drop a repeat (delivery is at least once).
	HeaderDelivery = "X-Apptokens-Delivery"
)

// batch is how many pending events a receiver's worker reads at once. While
// one receiver is down, the others get the first batch events; those stay in
// the outbox until it is back.
const batch = 1000

// Outbox is where the events come from: the store's webhook outbox
// (*store.Store).
type Outbox interface {
	// PendingWebhooks returns up to limit events not yet acked, oldest first.
	PendingWebhooks(limit int) ([]store.WebhookEvent, error)
	// AckWebhook removes a delivered event from the outbox.
	AckWebhook(id string) error
}

// Payload is the JSON body of a delivery: the event (store.EventExpiring,
// …), the token's name and non-secret hint, when it happens or happened
// (RFC 3339, UTC), and why, in words.
type Payload struct {
	Event  string    `json:"event"`
	Token  string    `json:"token"`
	Hint   string    `json:"hint"`
	At     time.Time `json:"at"`
	Reason string    `json:"reason"`
}

// Config configures a Sender.
type Config struct {
	Outbox Outbox
	// URLs are the receivers (serve --webhook): absolute http or https URLs.
	URLs []string
	// Secret keys the HMAC of each body (serve --webhook-secret-file); nil
	// sends the events unsigned.
	Secret []byte
	// Client makes the requests; nil: one with DefaultTimeout that follows no
	// redirect (a 3xx is a failed delivery).
	Client *http.Client
	// Logger receives the sender's logs; nil discards them.
	Logger *slog.Logger
	// Metrics is where apptokens_webhook_deliveries_total is registered; nil
	// keeps none.
	Metrics prometheus.Registerer
	// Poll is how often the outbox is read for new events; default 1s.
	Poll time.Duration
	// MinBackoff and MaxBackoff bound the wait before a failed receiver is
	// tried again: it doubles from MinBackoff on each failure, up to
	// MaxBackoff; defaults 1s and 5m.
	MinBackoff, MaxBackoff time.Duration
}

// Delivery results, as apptokens_webhook_deliveries_total's "result" label
// names them.
const (
	resultDelivered = iota // the receiver answered 2xx
	resultRejected         // it answered another status
	resultFailed           // no answer: refused, timed out, reset
	numResults
)

var resultNames = [numResults]string{"delivered", "rejected", "failed"}

// Sender delivers the outbox's events to every receiver.
type Sender struct {
	out                    Outbox
	targets                []*url.URL
	secret                 []byte
	client                 *http.Client
	log                    *slog.Logger
	poll                   time.Duration
	minBackoff, maxBackoff time.Duration
	deliveries             [numResults]prometheus.Counter // nil entries: no metrics
	wake                   []chan struct{}

	mu sync.Mutex
	// done has, per event ID, a bit per receiver that accepted it.
	done map[string]uint64
	// acked has the events this sender acked, by the step it did so at: a
	// worker may still hold a list read before the ack, and must not send
	// them again. seq counts steps (reads begun, acks done); reading has, per
	// worker, the step its current list was read at (0: none).
	acked   map[string]uint64
	seq     uint64
	reading []uint64
}

// ParseURL checks a receiver's URL: absolute, http or https, with a host.
func ParseURL(s string) (*url.URL, error) {
	u, err := url.Parse(s)
	if err != nil {
		return nil, fmt.Errorf("webhook URL: %w", err)
	}
	if u.Scheme != "http" && u.Scheme != "https" || u.Host == "" {
		return nil, fmt.Errorf("webhook URL %q: want http://HOST[:PORT]/PATH or https://…", u.Redacted())
	}
	return u, nil
}

// ReadSecret reads the HMAC key from path: the file's content without
// leading and trailing white space (a trailing newline is not part of the key).
// An unreadable or empty file is an error.
func ReadSecret(path string) ([]byte, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("webhook secret: %w", err)
	}
	b = bytes.TrimSpace(b)
	if len(b) == 0 {
		return nil, fmt.Errorf("webhook secret file %s is empty", path)
	}
	return b, nil
}

// Sign is the X-Apptokens-Signature value of body under secret:
// "sha256=" and the hex HMAC-SHA256.
func Sign(secret, body []byte) string {
	m := hmac.New(sha256.New, secret)
	m.Write(body)
	return "sha256=" + hex.EncodeToString(m.Sum(nil))
}

// New makes a Sender; Run starts it.
func New(cfg Config) (*Sender, error) {
	if cfg.Outbox == nil {
		return nil, errors.New("webhook: no outbox")
	}
	if len(cfg.URLs) == 0 {
		return nil, errors.New("webhook: no URL")
	}
	if len(cfg.URLs) > MaxURLs {
		return nil, fmt.Errorf("webhook: %d URLs: at most %d", len(cfg.URLs), MaxURLs)
	}
	s := &Sender{
		out: cfg.Outbox, secret: cfg.Secret, client: cfg.Client, log: cfg.Logger,
		poll: cfg.Poll, minBackoff: cfg.MinBackoff, maxBackoff: cfg.MaxBackoff,
		done: map[string]uint64{}, acked: map[string]uint64{},
	}
	for _, raw := range cfg.URLs {
		u, err := ParseURL(raw)
		if err != nil {
			return nil, err
		}
		s.targets = append(s.targets, u)
		s.reading = append(s.reading, 0)
		s.wake = append(s.wake, make(chan struct{}, 1))
	}
	if s.client == nil {
		s.client = &http.Client{
			Timeout:       DefaultTimeout,
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		}
	}
	if s.log == nil {
		s.log = slog.New(slog.NewTextHandler(io.Discard, &slog.HandlerOptions{Level: slog.LevelError + 1}))
	}
	if s.poll <= 0 {
		s.poll = DefaultPoll
	}
	if s.minBackoff <= 0 {
		s.minBackoff = DefaultMinBackoff
	}
	if s.maxBackoff <= 0 {
		s.maxBackoff = DefaultMaxBackoff
	}
	s.maxBackoff = max(s.maxBackoff, s.minBackoff)
	if cfg.Metrics != nil {
		vec := prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "apptokens_webhook_deliveries_total",
			Help: "Webhook deliveries tried, by result: delivered (2xx), rejected (another status), failed (no answer).",
		}, []string{"result"})
		if err := cfg.Metrics.Register(vec); err != nil {
			return nil, fmt.Errorf("webhook: metrics: %w", err)
		}
		for r := range s.deliveries {
			s.deliveries[r] = vec.WithLabelValues(resultNames[r])
		}
	}
	return s, nil
}

// Notify has every receiver's worker read the outbox now rather than at its
// next poll (call it when the store may have new events).
func (s *Sender) Notify() {
	for _, c := range s.wake {
		select {
		case c <- struct{}{}:
		default:
		}
	}
}

// Run delivers events until ctx is done, then returns nil once the workers
// have stopped (a delivery under way is cancelled).
func (s *Sender) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	for i := range s.targets {
		wg.Go(func() { s.worker(ctx, i) })
	}
	wg.Wait()
	return nil
}

// worker delivers every pending event to receiver i, in outbox order, one at
// a time; on a failure it waits its backoff and reads the outbox again.
func (s *Sender) worker(ctx context.Context, i int) {
	target := s.targets[i]
	backoff := s.minBackoff
	failing := false
	for {
		wait := s.poll
		s.mu.Lock()
		s.seq++
		s.reading[i] = s.seq
		s.mu.Unlock()
		events, err := s.out.PendingWebhooks(batch)
		if err != nil {
			s.log.Error("webhook: cannot read the outbox; will retry", "err", err)
		}
		for _, ev := range events {
			if s.delivered(ev.ID, i) {
				continue
			}
			status, err := s.post(ctx, target, ev)
			if ctx.Err() != nil {
				return
			}
			if err != nil || status < 200 || status > 299 {
				if !failing {
					failing = true
					s.log.Warn("webhook: delivery failed; retrying with backoff", "url", target.Redacted(),
						"event", ev.Event, "status", status, "err", errString(err))
				}
				wait = backoff
				backoff = min(2*backoff, s.maxBackoff)
				break
			}
			if failing {
				failing = false
				s.log.Info("webhook: receiver accepts deliveries again", "url", target.Redacted())
			}
			backoff = s.minBackoff
			s.accepted(ev.ID, i)
		}
		s.mu.Lock()
		s.reading[i] = 0
		s.mu.Unlock()
		if err == nil && len(events) < batch {
			s.forget(events)
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-s.wake[i]:
			if wait > s.poll { // backing off: a new event does not cut the wait short
				select {
				case <-ctx.Done():
					t.Stop()
					return
				case <-t.C:
				}
			}
			t.Stop()
		case <-t.C:
		}
	}
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

// all is the mask of every receiver.
func (s *Sender) all() uint64 { return 1<<len(s.targets) - 1 }

// delivered reports whether receiver i has accepted the event id; an event
// every receiver accepted whose ack failed is acked again here.
func (s *Sender) delivered(id string, i int) bool {
	s.mu.Lock()
	mask := s.done[id]
	_, acked := s.acked[id]
	s.mu.Unlock()
	if acked {
		return true
	}
	if mask == s.all() {
		s.ack(id)
	}
	return mask&(1<<i) != 0
}

// accepted records that receiver i accepted the event id, and acks it in the
// outbox once every receiver has.
func (s *Sender) accepted(id string, i int) {
	s.mu.Lock()
	s.done[id] |= 1 << i
	all := s.done[id] == s.all()
	s.mu.Unlock()
	if all {
		s.ack(id)
	}
}

func (s *Sender) ack(id string) {
	if err := s.out.AckWebhook(id); err != nil {
		s.log.Error("webhook: delivered event not acked in the store; will retry", "err", err)
		return
	}
	s.mu.Lock()
	delete(s.done, id)
	s.seq++
	s.acked[id] = s.seq
	s.mu.Unlock()
}

// forget drops the marks of events no longer pending (acked by another
// node or before a restart): events is the whole outbox.
func (s *Sender) forget(events []store.WebhookEvent) {
	pending := make(map[string]bool, len(events))
	for _, ev := range events {
		pending[ev.ID] = true
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for id := range s.done {
		if !pending[id] {
			delete(s.done, id)
		}
	}
	// An event acked before every list still in use was read is in none.
	oldest := ^uint64(0)
	for _, r := range s.reading {
		if r != 0 {
			oldest = min(oldest, r)
		}
	}
	for id, at := range s.acked {
		if at < oldest && !pending[id] {
			delete(s.acked, id)
		}
	}
}

// post sends ev to target and returns the status of the answer.
func (s *Sender) post(ctx context.Context, target *url.URL, ev store.WebhookEvent) (int, error) {
	body, err := json.Marshal(Payload{Event: ev.Event, Token: ev.Token, Hint: ev.Hint, At: ev.At.UTC(), Reason: ev.Reason})
	if err != nil {
		return 0, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, target.String(), bytes.NewReader(body))
	if err != nil {
		return 0, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "apptokens-webhook")
	req.Header.Set(HeaderDelivery, ev.ID)
	if s.secret != nil {
		req.Header.Set(HeaderSignature, Sign(s.secret, body))
	}
	resp, err := s.client.Do(req)
	if err != nil {
		s.count(resultFailed)
		return 0, err
	}
	// Read a little of the body so that the connection can be reused.
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	if resp.StatusCode >= 200 && resp.StatusCode <= 299 {
		s.count(resultDelivered)
	} else {
		s.count(resultRejected)
	}
	return resp.StatusCode, nil
}

func (s *Sender) count(r int) {
	if c := s.deliveries[r]; c != nil {
		c.Inc()
	}
}
