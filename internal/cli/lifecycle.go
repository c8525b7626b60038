package cli

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/apptokens/apptokens/internal/secret"
	"github.com/apptokens/apptokens/store"
)

// ErrUnknownSecret is whois's answer for a well-formed secret no token has.
var ErrUnknownSecret = errors.New("no token has this secret")

func (a *app) rotateCmd() *cobra.Command {
	var grace string
	cmd := &cobra.Command{
		Use:   "rotate NAME [--grace 24h]",
		Short: "Give a token a new secret and print it, once, alone on stdout; the old one works until the grace window ends",
		Long: "rotate issues a new secret for the token (name, access, rules and usage stay).\n" +
			"The old secret keeps working for --grace (e.g. 24h, 30m, 7d; 0 refuses it at once),\n" +
			"then requests with it are refused (401 rotated_token).",
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			g, err := store.ParseGrace(grace)
			if err != nil {
				return err
			}
			return a.withStore(func(st *store.Store) error {
				c, err := st.Rotate(a.env.Actor, args[0], g)
				if err != nil {
					return err
				}
				_, err = fmt.Fprintln(cmd.OutOrStdout(), c.Secret.Reveal())
				return err
			})
		},
	}
	cmd.Flags().StringVar(&grace, "grace", "24h", "how long the old secret keeps working (e.g. 24h, 30m, 7d; 0: not at all)")
	return cmd
}

func (a *app) allowCmd(verb string, allow bool) *cobra.Command {
	short := "Remove networks from a token's allow-list (an empty list allows every address)"
	if allow {
		short = "Accept a token only from these networks (its allow-list; IPv4 or IPv6 CIDRs or addresses)"
	}
	return &cobra.Command{
		Use:   verb + " NAME CIDR...",
		Short: short,
		Args:  cobra.MinimumNArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.withStore(func(st *store.Store) error {
				n, err := st.SetAllowed(a.env.Actor, args[0], args[1:], allow)
				if err != nil {
					return err
				}
				verb := "removed from"
				if allow {
					verb = "added to"
				}
				_, err = fmt.Fprintf(cmd.OutOrStdout(), "%s %s the allow-list of %s\n", plural(n, "network"), verb, args[0])
				return err
			})
		},
	}
}

func (a *app) whoisCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "whois TOKEN|-",
		Short: "Say which token a found secret is (name, state, access, hint); - reads it from stdin; stores and prints nothing of it",
		Long: "whois looks a secret up by its digest and says which token it is: its name, state,\n" +
			"access and hint, and whether it is the token's current secret or its old one (rotating).\n" +
			"The secret is checked (format and checksum) before any lookup, never stored, never printed.\n" +
			"Give - to read it from stdin (one line), so that it stays out of the shell history and ps.",
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			raw := args[0]
			if raw == "-" {
				var err error
				if raw, err = readSecret(cmd.InOrStdin()); err != nil {
					return err
				}
			}
			tok, err := secret.Parse(raw)
			if err != nil {
				// Never echo what was given: it may be a real secret, mistyped.
				return fmt.Errorf("not an apptokens token: %w", err)
			}
			d := tok.Digest()
			return a.withStore(func(st *store.Store) error {
				t, old, err := st.Whois(d)
				if errors.Is(err, store.ErrNotFound) {
					return ErrUnknownSecret
				}
				if err != nil {
					return err
				}
				return printWhois(cmd.OutOrStdout(), t, old, st.Now(), st.InactiveAfter())
			})
		},
	}
}

// maxSecretLine bounds what whois reads from stdin: a token is 51 bytes.
const maxSecretLine = 4096

// readSecret reads one line from r (a token and its newline), without the
// line end and surrounding blanks.
func readSecret(r io.Reader) (string, error) {
	br := bufio.NewReaderSize(io.LimitReader(r, maxSecretLine), maxSecretLine)
	line, err := br.ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return "", fmt.Errorf("read the token from stdin: %w", err)
	}
	if errors.Is(err, io.EOF) && len(line) == maxSecretLine {
		return "", fmt.Errorf("stdin: a token is one line of %d characters", secret.Len)
	}
	line = strings.TrimSpace(line)
	if line == "" {
		return "", errors.New("no token on stdin: give one line with the token")
	}
	return line, nil
}

func printWhois(w io.Writer, t store.Token, old bool, now time.Time, inactiveAfter time.Duration) error {
	which := "current"
	hint := t.Hint
	if old {
		which = "old (the token was rotated)"
		hint = t.OldHint
		if !t.OldValidUntil.IsZero() {
			if now.Before(t.OldValidUntil) {
				which += "; it works until " + fmtTime(t.OldValidUntil) + " UTC"
			} else {
				which += "; refused since " + fmtTime(t.OldValidUntil) + " UTC"
			}
		}
	}
	var tw textTable
	tw.row("name:", store.Printable(t.Name))
	tw.row("state:", t.StateAt(now, inactiveAfter).Label())
	tw.row("access:", t.AccessNames())
	tw.row("hint:", store.Printable(hint))
	tw.row("secret:", which)
	tw.row("expires:", expiresText(t.ExpiresAt, now))
	return tw.writeTo(w)
}

// expiresText is when a token expires, for text output: "never", "in 12
// days" (rounded up; hours, then minutes, under a day), or the UTC time it
// expired at.
func expiresText(at, now time.Time) string {
	if at.IsZero() {
		return "never"
	}
	if !now.Before(at) {
		return "expired " + fmtTime(at)
	}
	return "in " + untilText(at.Sub(now))
}

// untilText is a positive span in words, rounded up: "12 days", "5 hours",
// "1 minute".
func untilText(d time.Duration) string {
	ceil := func(unit time.Duration) int { return int((d + unit - 1) / unit) }
	switch {
	case d > 24*time.Hour:
		return plural(ceil(24*time.Hour), "day")
	case d > time.Hour:
		return plural(ceil(time.Hour), "hour")
	}
	return plural(max(1, ceil(time.Minute)), "minute")
}

// rotatingText is the note of a token whose old secret still works, "" when
// none does: "rotating, old secret until 14:05" (UTC; with the date when it
// is not today).
func rotatingText(t store.Token, now time.Time) string {
	if !t.OldValidAt(now) {
		return ""
	}
	u := t.OldValidUntil.UTC()
	at := u.Format("15:04")
	if y, m, d := now.UTC().Date(); u.Year() != y || u.Month() != m || u.Day() != d {
		at = u.Format("2006-01-02 15:04")
	}
	return "rotating, old secret until " + at
}

// expiresUsage is the help of --expires.
const expiresUsage = "when the token stops working: a span from now (90d, 36h), a date (2027-03-01, UTC) or an RFC 3339 time"

// parseExpires reads --expires with the store's rules (store.ParseExpires):
// "" and "never" are no expiry (zero); a time in the past is refused.
func parseExpires(s string, now time.Time) (time.Time, error) {
	t, err := store.ParseExpires(s, now)
	if err != nil {
		if strings.Contains(err.Error(), strconv.Quote(s)) {
			return time.Time{}, fmt.Errorf("--expires: %w", err)
		}
		return time.Time{}, fmt.Errorf("--expires %q: %w", s, err)
	}
	return t, nil
}

// stopsWithin reports whether t stops working (expires or becomes
// Inactive) within the window from now: a token that already stopped is
// not listed.
func stopsWithin(t store.Token, now time.Time, inactiveAfter, window time.Duration) bool {
	if t.StateAt(now, inactiveAfter) != store.StateActive {
		return false
	}
	at := t.StopsAt(inactiveAfter)
	return !at.IsZero() && at.Before(now.Add(window))
}
