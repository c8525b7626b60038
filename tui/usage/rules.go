package usage

import (
	"strings"

	"github.com/charmbracelet/x/ansi"

	"github.com/apptokens/apptokens/tui/table"
)

// rulesLines is the lines the network rules take above the address table:
// the allow-list and the blocked ranges.
const rulesLines = 2

// allowedText is an allow-list in words.
func allowedText(nets []string) string {
	if len(nets) == 0 {
		return "any address (no allow-list)"
	}
	return strings.Join(nets, ", ")
}

// blockedRanges are the token's blocked ranges (CIDRs of more than one
// address); blocked addresses are rows of the table.
func (m *Model) blockedRanges() []string {
	var out []string
	for _, b := range m.rules.Blocked {
		if strings.Contains(b, "/") {
			out = append(out, b)
		}
	}
	return out
}

// rulesView is the allow-list and the blocked ranges, one line each, cut to
// the width with the number of ranges left out.
func (m *Model) rulesView() string {
	s := m.ctx.Styles
	blocked := "none"
	if r := m.blockedRanges(); len(r) > 0 {
		blocked = strings.Join(r, ", ")
	}
	line := func(label, text string) string {
		if room := m.width - len(label); table.Width(text) > room {
			text = ansi.Truncate(text, max(1, room), "…")
		}
		return s.Subtle.Render(label) + text + "\n"
	}
	return line("Allowed networks: ", allowedText(m.rules.Allowed)) + line("Blocked ranges:   ", blocked)
}
