package usage

import (
	"strings"
	"time"

	"github.com/charmbracelet/bubbles/key"
	tea "github.com/charmbracelet/bubbletea"

	"github.com/apptokens/apptokens/store"
	"github.com/apptokens/apptokens/tui/chart"
	"github.com/apptokens/apptokens/tui/common"
	"github.com/apptokens/apptokens/tui/table"
)

// SeriesStore is what the chart needs from the store: the token's requests
// per hour since a time, of one address or ("" ) of all.
type SeriesStore interface {
	UsageSeriesID(id, ip string, since time.Time) ([]store.HourCount, error)
}

// usageChart is the chart of requests per hour above the address table. It
// reads the store when the screen opens, when the window or the charted
// address changes, and after the feed dropped changes; the gate's traffic
// reaches it as the hourly increments ChangeUsed carries, without a read.
type usageChart struct {
	win     chart.Window
	ip      string // the address charted; "" charts the whole token
	series  chart.Series
	loaded  bool
	loading bool
	dirty   bool // traffic came while loading: the load may miss it, load again
	seq     int  // number of the newest load: older results are dropped
	err     error
	bars    int // rows of bars; 0 hides the chart (too little height)
}

// seriesMsg is a load's result.
type seriesMsg struct {
	id    string
	seq   int
	hours []store.HourCount
	err   error
}

// chartIP is the address to chart: the selected one when exactly one is
// selected (space), else the whole token.
func (m *Model) chartIP() string {
	if len(m.selected) != 1 {
		return ""
	}
	for ip := range m.selected {
		return ip
	}
	return ""
}

// loadSeries reads the charted series for the current window.
func (m *Model) loadSeries() tea.Cmd {
	c := &m.chart
	c.seq++
	c.loading, c.dirty = true, false
	st, id, seq, ip, since := m.store, m.id, c.seq, c.ip, c.win.Since(m.ctx.Now())
	return func() tea.Msg {
		hours, err := st.UsageSeriesID(id, ip, since)
		return seriesMsg{id: id, seq: seq, hours: hours, err: err}
	}
}

// Update handles the chart's messages and keys, then the rest of the screen,
// then follows the selection with the chart.
func (m *Model) Update(msg tea.Msg) (tea.Model, tea.Cmd) {
	c := &m.chart
	switch msg := msg.(type) {
	case seriesMsg:
		if msg.id != m.id || msg.seq != c.seq {
			return m, nil
		}
		c.loading = false
		if msg.err != nil {
			c.err = msg.err
			return m, common.Error(msg.err)
		}
		c.series.Set(msg.hours)
		c.loaded, c.err = true, nil
		if c.dirty {
			return m, m.loadSeries()
		}
		return m, nil
	case common.ChangesMsg:
		if reload := m.chartChanges(msg); reload != nil {
			_, cmd := m.update(msg)
			return m, tea.Batch(cmd, reload)
		}
	case tea.KeyMsg:
		if key.Matches(msg, m.keys.ChartWindow) {
			c.win, c.loaded = c.win.Next(), false
			return m, m.loadSeries()
		}
	}
	_, cmd := m.update(msg)
	if ip := m.chartIP(); ip != c.ip {
		c.ip, c.loaded = ip, false
		cmd = tea.Batch(cmd, m.loadSeries())
	}
	return m, cmd
}

// chartChanges adds the gate's new requests to the chart; after changes were
// dropped (or a restore) it returns the chart's reload.
func (m *Model) chartChanges(msg common.ChangesMsg) tea.Cmd {
	c := &m.chart
	reload := msg.Reload
	for _, ch := range msg.Changes {
		switch {
		case ch.Kind == store.ChangeReload:
			reload = true
		case ch.Kind == store.ChangeUsed && ch.TokenID == m.id:
			if c.loading {
				c.dirty = true
				continue
			}
			for _, h := range ch.Hours {
				if c.ip == "" || h.IP == c.ip {
					c.series.Add(h.Hour, h.Allowed, h.Denied)
				}
			}
		}
	}
	c.series.Prune(c.win.Since(m.ctx.Now()))
	switch {
	case reload && c.loading:
		c.dirty = true
	case reload:
		return m.loadSeries()
	}
	return nil
}

// chartSize gives the chart a third of the screen's height below the
// table's head, up to 12 rows of bars, and none when fewer than 3 fit.
func (m *Model) chartSize(height int) int {
	bars := min(12, (height-table.HeadLines)/3)
	if bars < 3 {
		bars = 0
	}
	m.chart.bars = bars
	if bars == 0 {
		return 0
	}
	return chart.Lines(bars)
}

// chartLines is the lines the chart takes on screen.
func (m *Model) chartLines() int {
	if m.chart.bars == 0 {
		return 0
	}
	return chart.Lines(m.chart.bars)
}

// chartView draws the chart in chartLines lines.
func (m *Model) chartView() string {
	c := &m.chart
	s := m.ctx.Styles
	if c.bars == 0 {
		return ""
	}
	subject := "all addresses"
	if c.ip != "" {
		subject = "address " + c.ip
	}
	if !c.loaded {
		text := s.Subtle.Render("Loading the chart of " + subject + "…")
		if c.err != nil {
			text = s.Error.Render("Could not load the chart: " + c.err.Error())
		}
		return text + strings.Repeat("\n", chart.Lines(c.bars)-1)
	}
	return chart.Chart{Series: &c.series, Window: c.win, Subject: subject, Now: m.ctx.Now()}.View(s, m.width, c.bars)
}
