package suite

import (
	"strings"
	"testing"
)

func TestTable(t *testing.T) {
	r := &Results{
		Settings: Settings{IdleSessions: 2000, Reconnect: 1000},
		Direct:   &Figures{RPS: 10000, P50C1Ms: 0.1, DownloadMBps: 500},
		Transports: map[string]*Figures{
			"tcp":  {RPS: 4000, P50C1Ms: 0.3, DownloadMBps: 200, CPUPerRequestUs: 90, IdleSessionKiB: 70},
			"quic": {RPS: 2000, P50C1Ms: 0.5, DownloadMBps: 50, CPUPerRequestUs: 160, IdleSessionKiB: 100},
		},
	}
	table := r.Table()
	for _, want := range []string{
		"| figure | tcp | quic | direct | ratio to direct | target | met? |",
		"| GET issue (4 KiB), req/s at c32 | 4000 | 2000 | 10000 | tcp 0.40× · quic 0.20× | tcp ≥ 0.35× · quic ≥ 0.25× | tcp yes · quic **no** |",
		"| p50 latency at c1, ms | 0.300 | 0.500 | 0.100 | tcp +0.200 ms · quic +0.400 ms |",
		"tcp 0.40× · quic 0.10× | tcp ≥ 0.30× · quic ≥ 0.12× | tcp yes · quic **no** |",
		"| gateway memory per idle session, KiB (of 2000) | 70.0 | 100.0 | — | — | tcp ≤ 64 · quic ≤ 160 | tcp **no** · quic yes |",
	} {
		if !strings.Contains(table, want) {
			t.Errorf("table lacks %q:\n%s", want, table)
		}
	}
	if strings.Contains(table, "agents back") {
		t.Errorf("table has a row for the restart, which was not measured:\n%s", table)
	}
}
