package cli

import (
	"errors"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/apptokens/apptokens/internal/secret"
	"github.com/apptokens/apptokens/store"
)

func (a *app) seedCmd() *cobra.Command {
	var demo bool
	var tokens, ips int
	cmd := &cobra.Command{
		Use:   "seed [--demo] [--tokens N] [--ips M]",
		Short: "Write fake data for demos (--demo) and benchmarks (--tokens N --ips M)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if !demo && tokens <= 0 {
				return errors.New("say what to seed: --demo, or --tokens N [--ips M]")
			}
			if tokens < 0 || ips < 0 {
				return errors.New("--tokens and --ips must not be negative")
			}
			if ips > maxSeedIPs {
				return fmt.Errorf("--ips: at most %d", maxSeedIPs)
			}
			return a.withStore(func(st *store.Store) error {
				now := st.Now().UTC()
				if demo {
					toks, err := DemoTokens(now)
					if err != nil {
						return err
					}
					if err := bulkLoad(st, a.env.Actor, "demo data", toks); err != nil {
						return err
					}
					_, err = fmt.Fprintf(cmd.OutOrStdout(), "seeded %s for the demo\n", plural(len(toks), "token"))
					if err != nil || tokens <= 0 {
						return err
					}
				}
				if err := SeedLoad(st, a.env.Actor, now, tokens, ips); err != nil {
					return err
				}
				_, err := fmt.Fprintf(cmd.OutOrStdout(), "seeded %s with %s each\n", plural(tokens, "token"), plural(ips, "IP address"))
				return err
			})
		},
	}
	cmd.Flags().BoolVar(&demo, "demo", false, "a small, realistic, fixed set of tokens for demos")
	cmd.Flags().IntVar(&tokens, "tokens", 0, "number of generated tokens (load-000001, …)")
	cmd.Flags().IntVar(&ips, "ips", 0, "usage rows (IP addresses) per generated token")
	return cmd
}

// maxSeedIPs is how many distinct addresses seedIP has (10.0.0.1 to 10.255.255.254).
const maxSeedIPs = 1<<24 - 2

// seedIP is the j-th generated address, distinct for every j < maxSeedIPs.
func seedIP(j int) string {
	n := j + 1
	return fmt.Sprintf("10.%d.%d.%d", n>>16&0xff, n>>8&0xff, n&0xff)
}

// seedChunk is how many generated tokens go into one write batch.
const seedChunk = 5000

// SeedLoad writes n generated tokens named load-000001… with m usage rows each,
// in batches. Their secrets are thrown away: these tokens are for benchmarks.
func SeedLoad(st *store.Store, actor store.Actor, now time.Time, n, m int) error {
	for start := 0; start < n; start += seedChunk {
		end := min(start+seedChunk, n)
		batch := make([]store.SeedToken, 0, end-start)
		for i := start; i < end; i++ {
			sec, err := secret.Generate()
			if err != nil {
				return err
			}
			created := now.Add(-time.Duration(i%60) * 24 * time.Hour).Add(-time.Duration(i%1440) * time.Minute)
			t := store.SeedToken{
				Token: store.Token{
					Name:        fmt.Sprintf("load-%06d", i+1),
					Description: fmt.Sprintf("generated token %d", i+1),
					Access:      []store.Access{store.AllAccess()[i%2]},
					Active:      i%7 != 0,
					CreatedAt:   created,
					UpdatedAt:   created,
				},
				Secret: sec,
			}
			for j := 0; j < m; j++ {
				// Used between its creation and now: never before it existed.
				ago := time.Duration((i+j)%(30*24)) * time.Hour
				if span := now.Sub(created); span > 0 {
					ago %= span
				} else {
					ago = 0
				}
				last := now.Add(-ago)
				t.Usage = append(t.Usage, store.Usage{
					IP:          seedIP(j),
					FirstUsedAt: created,
					LastUsedAt:  last,
					Allowed:     uint64((i*31 + j*17) % 5000),
					Denied:      uint64((i + j) % 7),
				})
				if last.After(t.Token.LastUsedAt) {
					t.Token.LastUsedAt = last
				}
			}
			batch = append(batch, t)
		}
		if err := bulkLoad(st, actor, "generated tokens", batch); err != nil {
			return err
		}
	}
	return nil
}

// bulkLoad is st.BulkLoad, saying in one line what to do when seed data (what)
// is there already: seeding twice into one database clashes on the names.
func bulkLoad(st *store.Store, actor store.Actor, what string, toks []store.SeedToken) error {
	err := st.BulkLoad(actor, toks)
	if !errors.Is(err, store.ErrNameTaken) {
		return err
	}
	for _, t := range toks {
		if _, gerr := st.Get(t.Token.Name); gerr == nil {
			return &seedPresentError{fmt.Sprintf("%s already present: token %q exists; seed into an empty database (--db DIR)", what, t.Token.Name), err}
		}
	}
	return err
}

// seedPresentError says seed data is there already; errors.Is matches
// store.ErrNameTaken through it.
type seedPresentError struct {
	msg string
	err error
}

func (e *seedPresentError) Error() string { return e.msg }
func (e *seedPresentError) Unwrap() error { return e.err }

// DemoTokens is the fixed demo data set: plausible tokens, some inactive, usage
// from a few IPs, one of them blocked. Times are relative to now.
func DemoTokens(now time.Time) ([]store.SeedToken, error) {
	day := 24 * time.Hour
	type use struct {
		ip              string
		first, last     time.Duration // ago
		allowed, denied uint64
		blocked         bool
	}
	type demo struct {
		name, desc string
		access     []store.Access
		active     bool
		created    time.Duration // ago
		uses       []use
	}
	sd, tp := store.AccessSecurityDirector, store.AccessThirdPartyFeeds
	set := []demo{
		{"soc-siem-export", "Splunk forwarder pulling threat events for the SOC", []store.Access{sd}, true, 120 * day, []use{
			{"10.20.1.15", 119 * day, 2 * time.Minute, 48210, 3, false},
			{"10.20.1.16", 90 * day, 7 * time.Minute, 47002, 0, false},
			{"203.0.113.77", 3 * day, 3 * day, 4, 19, true},
		}},
		{"threatfeed-sync", "Nightly import of third-party indicator feeds", []store.Access{tp}, true, 200 * day, []use{
			{"10.30.4.2", 199 * day, 9 * time.Hour, 1830, 0, false},
		}},
		{"firewall-automation", "Ansible playbooks that push policy updates", []store.Access{sd, tp}, true, 75 * day, []use{
			{"10.10.0.21", 74 * day, 26 * time.Hour, 912, 2, false},
			{"10.10.0.22", 60 * day, 4 * day, 388, 0, false},
		}},
		{"grafana-dashboards", "Read-only metrics for the NOC wall screens", []store.Access{sd}, true, 40 * day, []use{
			{"10.40.2.8", 39 * day, 30 * time.Second, 120544, 0, false},
		}},
		{"legacy-soar", "Old SOAR integration, replaced by soar-playbooks", []store.Access{sd}, false, 400 * day, []use{
			{"10.50.9.9", 399 * day, 95 * day, 20311, 41, false},
		}},
		{"soar-playbooks", "Automated response playbooks (Cortex XSOAR)", []store.Access{sd, tp}, true, 95 * day, []use{
			{"10.50.9.10", 94 * day, 15 * time.Minute, 9120, 5, false},
			{"10.50.9.11", 94 * day, 3 * time.Hour, 8874, 1, false},
		}},
		{"partner-intel-share", "STIX/TAXII exchange with the partner ISAC", []store.Access{tp}, true, 33 * day, []use{
			{"198.51.100.23", 32 * day, 27 * day, 57, 0, false},
		}},
		{"vuln-scanner", "Weekly vulnerability scan results upload", []store.Access{sd}, true, 50 * day, []use{
			{"10.60.1.40", 49 * day, 6 * day, 7, 0, false},
		}},
		{"backup-verifier", "", []store.Access{sd}, false, 150 * day, nil},
		{"ci-pipeline", "Integration tests in the build pipeline", []store.Access{tp}, true, 12 * day, []use{
			{"10.70.3.5", 11 * day, 40 * time.Minute, 640, 12, false},
		}},
		{"edr-connector", "Endpoint detection events into Security Director", []store.Access{sd}, true, 8 * day, []use{
			{"10.80.0.3", 8 * day, 1 * time.Minute, 30120, 0, false},
		}},
		{"test-sandbox", "Sandbox for trying the API; safe to delete", []store.Access{tp}, true, 2 * day, nil},
	}
	out := make([]store.SeedToken, 0, len(set))
	for _, d := range set {
		sec, err := secret.Generate()
		if err != nil {
			return nil, err
		}
		created := now.Add(-d.created).Truncate(time.Minute)
		st := store.SeedToken{
			Token: store.Token{Name: d.name, Description: d.desc, Access: d.access, Active: d.active,
				CreatedAt: created, UpdatedAt: created},
			Secret: sec,
		}
		for _, u := range d.uses {
			last := now.Add(-u.last)
			st.Usage = append(st.Usage, store.Usage{IP: u.ip, FirstUsedAt: now.Add(-u.first), LastUsedAt: last,
				Allowed: u.allowed, Denied: u.denied, Blocked: u.blocked})
			if u.allowed > 0 && last.After(st.Token.LastUsedAt) {
				st.Token.LastUsedAt = last
			}
			st.History = append(st.History, demoHours(u.ip, now, now.Add(-u.first), last, u.allowed, u.denied)...)
		}
		out = append(out, st)
	}
	return out, nil
}

// demoHours is a demo address's usage history: of its requests, the share that
// falls in the last 30 days (store.HistoryRetention) spread over the hours it
// was in use then, busier from 07:00 to 19:00 UTC, so that the usage screen's
// chart shows days; its denied requests spread evenly. The hours add up to at
// most the address's totals.
func demoHours(ip string, now, first, last time.Time, allowed, denied uint64) []store.UsageHour {
	from := first
	if keep := now.Add(-store.HistoryRetention); from.Before(keep) {
		from = keep
	}
	from, to := from.Truncate(time.Hour), last.Truncate(time.Hour)
	if to.Before(from) {
		return nil
	}
	n := int(to.Sub(from)/time.Hour) + 1
	lifetime := int(last.Sub(first)/time.Hour) + 1
	share := allowed
	if lifetime > n {
		share = allowed * uint64(n) / uint64(lifetime)
	}
	cum := make([]uint64, n+1) // cumulative weights
	for i := range n {
		w := uint64(1)
		if h := from.Add(time.Duration(i) * time.Hour).Hour(); h >= 7 && h < 19 {
			w = 4
		}
		cum[i+1] = cum[i] + w
	}
	out := make([]store.UsageHour, 0, n)
	for i := range n {
		u := store.UsageHour{
			IP:      ip,
			Hour:    from.Add(time.Duration(i) * time.Hour),
			Allowed: share*cum[i+1]/cum[n] - share*cum[i]/cum[n],
			Denied:  denied*uint64(i+1)/uint64(n) - denied*uint64(i)/uint64(n),
		}
		if u.Allowed+u.Denied > 0 {
			out = append(out, u)
		}
	}
	return out
}
