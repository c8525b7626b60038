package cli

import (
	"fmt"
	"io"
	"strconv"
	"time"

	"github.com/apptokens/apptokens/store"
)

// seriesWindows are the values of `usage --series`: how many hours, ending
// with the current one.
var seriesWindows = map[string]int{"24h": 24, "7d": 7 * 24, "30d": 30 * 24}

// parseWindow is the number of hours of a --series value (0 for none).
func parseWindow(v string) (int, error) {
	if v == "" {
		return 0, nil
	}
	n, ok := seriesWindows[v]
	if !ok {
		return 0, fmt.Errorf("invalid --series %q: use 24h, 7d or 30d", v)
	}
	return n, nil
}

// hourJSON is one hour of `usage --json --series`.
type hourJSON struct {
	Hour    rfc3339 `json:"hour"`
	Allowed uint64  `json:"allowed"`
	Denied  uint64  `json:"denied"`
}

// usageSeriesJSON is `usage --json --series`: DESIGN.md's object.
type usageSeriesJSON struct {
	Addresses []usageJSON `json:"addresses"`
	Series    []hourJSON  `json:"series"`
}

// denseSeries is the requests per hour of the token with this id (or, with ip, of that address)
// for the last hours hours, the current one last, by the store's clock: every
// hour of the window is there, those without requests as zeros, so that a
// script can chart it as it is.
func denseSeries(st *store.Store, id, ip string, hours int) ([]hourJSON, error) {
	last := st.Now().UTC().Truncate(time.Hour)
	first := last.Add(-time.Duration(hours-1) * time.Hour)
	hs, err := st.UsageSeriesID(id, ip, first)
	if err != nil {
		return nil, err
	}
	out := make([]hourJSON, hours)
	for i := range out {
		out[i].Hour = rfc3339(first.Add(time.Duration(i) * time.Hour))
	}
	for _, h := range hs {
		if i := int(h.Hour.Sub(first) / time.Hour); i >= 0 && i < hours {
			out[i].Allowed += h.Allowed
			out[i].Denied += h.Denied
		}
	}
	return out, nil
}

// writeSeries is the text form of a series: one row an hour, in UTC.
func writeSeries(w io.Writer, series []hourJSON) error {
	var tw textTable
	tw.row("HOUR (UTC)", "ALLOWED", "DENIED")
	for _, h := range series {
		tw.row(time.Time(h.Hour).UTC().Format("2006-01-02 15:04"),
			strconv.FormatUint(h.Allowed, 10), strconv.FormatUint(h.Denied, 10))
	}
	return tw.writeTo(w)
}

// onlyIP keeps the rows of the address ip (normalized as the store does).
func onlyIP(us []store.Usage, ip string) []store.Usage {
	var out []store.Usage
	for _, u := range us {
		if u.IP == ip {
			out = append(out, u)
		}
	}
	return out
}
