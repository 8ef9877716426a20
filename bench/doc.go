// Package bench holds nothing but this comment: the benchmark of OX Broker
// lives in its subpackages, and `make bench` runs it.
//
//   - cmd/oxbroker-bench: the driver behind `make bench`: it starts the Jira
//     stand-in, the gateway and the agent as real processes on loopback,
//     and frp on the same loads, and prints Markdown tables
//     (docs/benchmarks.md).
//   - suite: the measurements the driver runs, and the tables.
//   - frp: builds frp (frps, frpc) from its Go module into a cache outside
//     the repository, and writes their configs.
//   - load: the load generator (a lean HTTP/1.1 client) and bulk transfers.
//   - agentsim: light simulated agents that complete the real tunnel
//     handshake and hold idle sessions, for memory and reconnect figures.
//   - procstat: CPU time and memory of a process, from /proc.
//   - rig: configs, tokens and certificates of a benchmark setup.
//   - inproc: Go benchmarks that run gateway, agent and stand-in in one
//     process, for pprof profiles of the request path.
package bench
