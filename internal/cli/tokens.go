package cli

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/charmbracelet/x/ansi"
	"github.com/spf13/cobra"

	"github.com/apptokens/apptokens/store"
)

func (a *app) createCmd() *cobra.Command {
	var name, desc, expires string
	var access []string
	cmd := &cobra.Command{
		Use:   "create --name NAME [--description TEXT] --access security-director[,third-party-feeds] [--expires 90d|DATE]",
		Short: "Create a token and print it, once, alone on stdout",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			acc, err := store.ParseAccessList(strings.Join(access, ","))
			if err != nil {
				return err
			}
			return a.withStore(func(st *store.Store) error {
				exp, err := parseExpires(expires, st.Now())
				if err != nil {
					return err
				}
				c, err := st.Create(a.env.Actor, store.NewToken{Name: name, Description: desc, Access: acc, ExpiresAt: exp})
				if err != nil {
					return err
				}
				_, err = fmt.Fprintln(cmd.OutOrStdout(), c.Secret.Reveal())
				return err
			})
		},
	}
	cmd.Flags().StringVar(&name, "name", "", "unique name: letters, digits and dashes, at most 32")
	cmd.Flags().StringVar(&desc, "description", "", "free text, at most 1024 characters")
	cmd.Flags().StringSliceVar(&access, "access", nil, "security-director and/or third-party-feeds (comma-separated)")
	cmd.Flags().StringVar(&expires, "expires", "", expiresUsage)
	_ = cmd.MarkFlagRequired("name")
	_ = cmd.MarkFlagRequired("access")
	return cmd
}

// tokenJSON is the `list --json` shape of DESIGN.md.
type tokenJSON struct {
	Name        string      `json:"name"`
	Description string      `json:"description"`
	Access      []string    `json:"access"`
	State       store.State `json:"state"`
	CreatedAt   rfc3339     `json:"created_at"`
	LastUsedAt  *rfc3339    `json:"last_used_at"`
	ExpiresAt   *rfc3339    `json:"expires_at"`
	Hint        string      `json:"hint"`
	// RotatingUntil is when the old secret of a rotated token stops working;
	// null when no old secret works.
	RotatingUntil *rfc3339 `json:"rotating_until"`
	// AllowedNetworks is the allow-list (CIDRs); empty: every address.
	AllowedNetworks []string `json:"allowed_networks"`
}

// jsonToken is t in the `list --json` shape at now.
func jsonToken(t store.Token, now time.Time, after time.Duration) tokenJSON {
	acc := make([]string, len(t.Access))
	for i, x := range t.Access {
		acc[i] = string(x)
	}
	var rot *rfc3339
	if t.OldValidAt(now) {
		rot = optTime(t.OldValidUntil)
	}
	nets := t.Allowed
	if nets == nil {
		nets = []string{}
	}
	return tokenJSON{
		Name: t.Name, Description: t.Description, Access: acc,
		State: t.StateAt(now, after), CreatedAt: rfc3339(t.CreatedAt),
		LastUsedAt: optTime(t.LastUsedAt), ExpiresAt: optTime(t.ExpiresAt), Hint: t.Hint,
		RotatingUntil: rot, AllowedNetworks: nets,
	}
}

func (a *app) listCmd() *cobra.Command {
	var asJSON bool
	var expiring string
	cmd := &cobra.Command{
		Use:   "list [--json] [--expiring 7d]",
		Short: "List tokens",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var within time.Duration
			if cmd.Flags().Changed("expiring") {
				var err error
				if within, err = store.ParseDuration(expiring); err != nil || within == 0 {
					return fmt.Errorf("--expiring %q: want a window such as 7d or 48h", expiring)
				}
			}
			return a.withStore(func(st *store.Store) error {
				now, after := st.Now(), st.InactiveAfter()
				keep := func(store.Token) bool { return true }
				if within > 0 {
					keep = func(t store.Token) bool { return stopsWithin(t, now, after, within) }
				}
				if asJSON {
					return streamTokensJSON(cmd.OutOrStdout(), st, now, after, keep)
				}
				toks, err := st.List()
				if err != nil {
					return err
				}
				toks = slices.DeleteFunc(toks, func(t store.Token) bool { return !keep(t) })
				if within > 0 && len(toks) == 0 {
					_, err := fmt.Fprintf(cmd.OutOrStdout(), "No token stops working within %s.\n", expiring)
					return err
				}
				return printTokens(cmd.OutOrStdout(), toks, now, after)
			})
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	cmd.Flags().StringVar(&expiring, "expiring", "", "only tokens that stop working (expire or become Inactive) within this window, e.g. 7d")
	return cmd
}

// streamTokensJSON writes the `list --json` array one token at a time, as the
// store reads them: memory stays the same for 10 or 100,000 tokens. The bytes
// are those of writeJSON on the whole array (two-space indent).
func streamTokensJSON(w io.Writer, st *store.Store, now time.Time, after time.Duration, keep func(store.Token) bool) error {
	bw := bufio.NewWriterSize(w, 64<<10)
	n := 0
	err := st.EachToken(func(t store.Token) error {
		if !keep(t) {
			return nil
		}
		b, err := json.MarshalIndent(jsonToken(t, now, after), "  ", "  ")
		if err != nil {
			return err
		}
		sep := ",\n  "
		if n == 0 {
			sep = "[\n  "
		}
		n++
		if _, err := bw.WriteString(sep); err != nil {
			return err
		}
		_, err = bw.Write(b)
		return err
	})
	if err != nil {
		return err
	}
	end := "\n]\n"
	if n == 0 {
		end = "[]\n"
	}
	if _, err := bw.WriteString(end); err != nil {
		return err
	}
	return bw.Flush()
}

func printTokens(w io.Writer, toks []store.Token, now time.Time, after time.Duration) error {
	if len(toks) == 0 {
		_, err := fmt.Fprintln(w, "No tokens yet. Create one with: apptokens create --name NAME --access security-director")
		return err
	}
	var tw textTable
	tw.row("NAME", "STATE", "ACCESS", "DAYS TO INACTIVE", "EXPIRES", "CREATED (UTC)", "LAST USED (UTC)", "HINT", "DESCRIPTION")
	for _, t := range toks {
		days := "-"
		if d, ok := t.DaysToInactive(now, after); ok {
			days = strconv.Itoa(d)
		}
		state := t.StateAt(now, after).Label()
		if r := rotatingText(t, now); r != "" {
			state += ", " + r
		}
		tw.row(t.Name, state, t.AccessNames(), days, expiresText(t.ExpiresAt, now),
			fmtTime(t.CreatedAt), fmtTime(t.LastUsedAt), t.Hint, firstLine(t.Description, 60))
	}
	return tw.writeTo(w)
}

// namesCmd is a command that changes the named tokens in one transaction and
// says how many it changed, e.g. "2 tokens deactivated".
func (a *app) namesCmd(verb, short string, change func(st *store.Store, names []string) (int, error)) *cobra.Command {
	return &cobra.Command{
		Use:   verb + " NAME...",
		Short: short,
		Args:  cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, names []string) error {
			return a.withStore(func(st *store.Store) error {
				n, err := change(st, names)
				if err != nil {
					return err
				}
				_, err = fmt.Fprintf(cmd.OutOrStdout(), "%s %sd\n", plural(n, "token"), verb) // activate, deactivate, delete + "d"
				return err
			})
		},
	}
}

func (a *app) setActiveCmd(verb string, active bool) *cobra.Command {
	short := "Deactivate tokens: requests with them are refused"
	if active {
		short = "Activate tokens again"
	}
	return a.namesCmd(verb, short, func(st *store.Store, names []string) (int, error) {
		return st.SetActive(a.env.Actor, names, active)
	})
}

func (a *app) deleteCmd() *cobra.Command {
	return a.namesCmd("delete", "Delete tokens and their usage for good", func(st *store.Store, names []string) (int, error) {
		return st.Delete(a.env.Actor, names)
	})
}

func (a *app) editCmd() *cobra.Command {
	var desc, expires string
	var access []string
	cmd := &cobra.Command{
		Use:   "edit NAME [--description TEXT] [--access LIST] [--expires 90d|DATE|never]",
		Short: "Change a token's description, access type or expiry (the name never changes)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var e store.Edit
			if cmd.Flags().Changed("description") {
				e.Description = &desc
			}
			if cmd.Flags().Changed("access") {
				acc, err := store.ParseAccessList(strings.Join(access, ","))
				if err != nil {
					return err
				}
				e.Access = acc
			}
			setExpires := cmd.Flags().Changed("expires")
			if e.Description == nil && e.Access == nil && !setExpires {
				return fmt.Errorf("nothing to change: give --description, --access and/or --expires")
			}
			return a.withStore(func(st *store.Store) error {
				if setExpires {
					exp, err := parseExpires(expires, st.Now())
					if err != nil {
						return err
					}
					e.ExpiresAt = &exp
				}
				t, err := st.Edit(a.env.Actor, args[0], e)
				if err != nil {
					return err
				}
				_, err = fmt.Fprintf(cmd.OutOrStdout(), "token %s updated\n", t.Name)
				return err
			})
		},
	}
	cmd.Flags().StringVar(&desc, "description", "", "new description, at most 1024 characters")
	cmd.Flags().StringSliceVar(&access, "access", nil, "security-director and/or third-party-feeds (comma-separated)")
	cmd.Flags().StringVar(&expires, "expires", "", expiresUsage+"; never removes the expiry")
	return cmd
}

// usageJSON is the `usage --json` shape of DESIGN.md.
type usageJSON struct {
	IP          string   `json:"ip"`
	FirstUsedAt *rfc3339 `json:"first_used_at"`
	LastUsedAt  *rfc3339 `json:"last_used_at"`
	Allowed     uint64   `json:"allowed"`
	Denied      uint64   `json:"denied"`
	Blocked     bool     `json:"blocked"`
}

func (a *app) usageCmd() *cobra.Command {
	var asJSON bool
	var window, ip string
	cmd := &cobra.Command{
		Use:   "usage NAME [--json] [--series 24h|7d|30d] [--ip IP]",
		Short: "Show the IP addresses that used a token, and when; --series adds requests per hour",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			hours, err := parseWindow(window)
			if err != nil {
				return err
			}
			if ip != "" {
				if ip, err = store.ClientIP(ip); err != nil {
					return err
				}
			}
			return a.withStore(func(st *store.Store) error {
				// One token for both reads, by the ID its name has now:
				// never the rows of one token and the hours of another
				// that took its name in between.
				tok, err := st.Get(args[0])
				if err != nil {
					return err
				}
				us, err := st.UsageID(tok.ID)
				if err != nil {
					return err
				}
				if ip != "" {
					us = onlyIP(us, ip)
				}
				var series []hourJSON
				if hours > 0 {
					if series, err = denseSeries(st, tok.ID, ip, hours); err != nil {
						return err
					}
				}
				w := cmd.OutOrStdout()
				if asJSON {
					out := make([]usageJSON, 0, len(us))
					for _, u := range us {
						out = append(out, usageJSON{IP: u.IP, FirstUsedAt: optTime(u.FirstUsedAt),
							LastUsedAt: optTime(u.LastUsedAt), Allowed: u.Allowed, Denied: u.Denied, Blocked: u.Blocked})
					}
					if hours > 0 {
						return writeJSON(w, usageSeriesJSON{Addresses: out, Series: series})
					}
					return writeJSON(w, out)
				}
				if len(us) == 0 {
					msg := "No requests with this token yet."
					if ip != "" {
						msg = "No requests with this token from " + ip + " yet."
					}
					if _, err := fmt.Fprintln(w, msg); err != nil {
						return err
					}
				} else {
					var tw textTable
					tw.row("IP ADDRESS", "FIRST USED (UTC)", "LAST USED (UTC)", "ALLOWED", "DENIED", "STATUS")
					for _, u := range us {
						status := "Allowed"
						if u.Blocked {
							status = "Blocked"
						}
						tw.row(u.IP, fmtTime(u.FirstUsedAt), fmtTime(u.LastUsedAt),
							strconv.FormatUint(u.Allowed, 10), strconv.FormatUint(u.Denied, 10), status)
					}
					if err := tw.writeTo(w); err != nil {
						return err
					}
				}
				if hours == 0 {
					return nil
				}
				if _, err := fmt.Fprintln(w); err != nil {
					return err
				}
				return writeSeries(w, series)
			})
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	cmd.Flags().StringVar(&window, "series", "", "also print requests per hour (UTC) for the last 24h, 7d or 30d, every hour of it")
	cmd.Flags().StringVar(&ip, "ip", "", "only this IP address (its row and, with --series, its requests)")
	return cmd
}

func (a *app) blockCmd(verb string, blocked bool) *cobra.Command {
	short := "Unblock IP addresses or ranges (CIDRs) for a token"
	if blocked {
		short = "Block IP addresses or ranges (CIDRs) for a token: requests with it from there are refused"
	}
	return &cobra.Command{
		Use:   verb + " NAME IP|CIDR...",
		Short: short,
		Args:  cobra.MinimumNArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.withStore(func(st *store.Store) error {
				n, err := st.SetBlocked(a.env.Actor, args[0], args[1:], blocked)
				if err != nil {
					return err
				}
				_, err = fmt.Fprintf(cmd.OutOrStdout(), "%s %sed for %s\n", addressesWord(n, args[1:]), verb, args[0])
				return err
			})
		},
	}
}

// addressesWord counts what block and unblock changed: "2 IP addresses", or
// "2 addresses or ranges" when a range was given.
func addressesWord(n int, given []string) string {
	if !slices.ContainsFunc(given, func(s string) bool { return strings.Contains(s, "/") }) {
		return plural(n, "IP address")
	}
	if n == 1 {
		return "1 address or range"
	}
	return strconv.Itoa(n) + " addresses or ranges"
}

func (a *app) auditCmd() *cobra.Command {
	var asJSON bool
	var limit int
	cmd := &cobra.Command{
		Use:   "audit [--json]",
		Short: "Show the audit trail, newest first",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return a.withStore(func(st *store.Store) error {
				evs, err := st.Audit(limit)
				if err != nil {
					return err
				}
				w := cmd.OutOrStdout()
				if asJSON {
					out := make([]eventJSON, 0, len(evs))
					for _, e := range evs {
						out = append(out, eventJSON{Time: rfc3339(e.Time), Actor: e.Actor, Action: e.Action, Token: e.Token, Details: e.Details})
					}
					return writeJSON(w, out)
				}
				var tw textTable
				tw.row("TIME (UTC)", "ACTOR", "ACTION", "TOKEN", "DETAILS")
				for _, e := range evs {
					tw.row(e.Time.UTC().Format("2006-01-02 15:04:05"),
						store.Printable(e.Actor), e.Action, store.Printable(e.Token), store.Printable(e.Details))
				}
				return tw.writeTo(w)
			})
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	cmd.Flags().IntVar(&limit, "limit", 0, "show at most this many events (0: all)")
	return cmd
}

func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// rfc3339 is a time in JSON output: RFC 3339 in UTC, to the second, which every
// script's date parser reads.
type rfc3339 time.Time

func (t rfc3339) MarshalText() ([]byte, error) {
	return []byte(time.Time(t).UTC().Format(time.RFC3339)), nil
}

// optTime is nil (JSON null) for a zero time.
func optTime(t time.Time) *rfc3339 {
	if t.IsZero() {
		return nil
	}
	r := rfc3339(t)
	return &r
}

// eventJSON is the `audit --json` shape.
type eventJSON struct {
	Time    rfc3339 `json:"time"`
	Actor   string  `json:"actor"`
	Action  string  `json:"action"`
	Token   string  `json:"token"`
	Details string  `json:"details"`
}

// fmtTime is a time in text output: UTC, as in the TUI and in JSON, which the
// column titles say.
func fmtTime(t time.Time) string {
	if t.IsZero() {
		return "never"
	}
	return t.UTC().Format("2006-01-02 15:04")
}

// firstLine is the first line of s, escaped for the terminal and cut to width
// terminal cells, with "…" where it was cut.
func firstLine(s string, width int) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = s[:i] + " …"
	}
	s = store.Printable(s)
	if ansi.StringWidth(s) > width {
		return ansi.Truncate(s, width, "…")
	}
	return s
}

func plural(n int, what string) string {
	if n == 1 {
		return "1 " + what
	}
	if strings.HasSuffix(what, "ss") {
		return fmt.Sprintf("%d %ses", n, what)
	}
	return fmt.Sprintf("%d %ss", n, what)
}
