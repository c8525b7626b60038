package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestCrashLosesNothingSaved kills serve with SIGKILL in the middle of a burst of
// creates over SSH and gate requests, restarts it on the same database, and checks
// that every token whose create returned still verifies and that no usage older
// than the flush interval (1 s) was lost.
func TestCrashLosesNothingSaved(t *testing.T) {
	s := startServe(t)
	out, errOut, code := s.ssh("create", "--name", "hammered", "--access", "security-director")
	if code != 0 {
		t.Fatal(errOut)
	}
	hot := strings.TrimSpace(out)

	var mu sync.Mutex
	created := map[string]string{}
	var allowedAt []time.Time
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w := 0; w < 2; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				name := fmt.Sprintf("burst-%d-%d", w, i)
				out, _, code := s.ssh("create", "--name", name, "--access", "third-party-feeds")
				if code == 0 {
					mu.Lock()
					created[name] = strings.TrimSpace(out)
					mu.Unlock()
				}
			}
		}(w)
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		client := &http.Client{Timeout: 2 * time.Second}
		for {
			select {
			case <-stop:
				return
			default:
			}
			req, _ := http.NewRequest("GET", "http://"+s.httpAddr+"/auth", nil)
			req.Header.Set("Authorization", "Bearer "+hot)
			resp, err := client.Do(req)
			if err != nil {
				continue
			}
			resp.Body.Close()
			if resp.StatusCode == 200 {
				mu.Lock()
				allowedAt = append(allowedAt, time.Now())
				mu.Unlock()
			}
		}
	}()

	time.Sleep(3 * time.Second)
	killedAt := time.Now()
	s.kill9()
	close(stop)
	wg.Wait()
	if len(created) == 0 || len(allowedAt) == 0 {
		t.Fatalf("the burst did nothing: %d creates, %d allowed requests", len(created), len(allowedAt))
	}

	s.start()
	// Usage answered more than a flush interval (plus margin) before the kill
	// must have been written.
	var mustHave uint64
	for _, at := range allowedAt {
		if at.Before(killedAt.Add(-1500 * time.Millisecond)) {
			mustHave++
		}
	}
	out, _, _ = s.ssh("usage", "hammered", "--json")
	var usage []struct {
		IP      string `json:"ip"`
		Allowed uint64 `json:"allowed"`
	}
	if err := json.Unmarshal([]byte(out), &usage); err != nil || len(usage) != 1 {
		t.Fatalf("usage after restart: %v\n%s", err, out)
	}
	if usage[0].Allowed < mustHave {
		t.Fatalf("usage lost: %d allowed requests recorded, %d were answered more than 1.5 s before the kill (of %d)",
			usage[0].Allowed, mustHave, len(allowedAt))
	}
	for name, tok := range created {
		r := gateGet(t, s.httpAddr, "/auth", tok)
		if r.StatusCode != 200 || r.Header.Get("X-Token-Name") != name {
			t.Fatalf("token %s created before the crash: %d after restart", name, r.StatusCode)
		}
	}
	t.Logf("%d tokens created and %d requests allowed before the kill; %d of them recorded (%d required)",
		len(created), len(allowedAt), usage[0].Allowed, mustHave)
}
