// Package inproc runs the gateway, the agent and the Jira stand-in in one
// process over loopback, so that one CPU profile shows the whole request
// path of both sides. It has only benchmarks:
//
//	go test -run=NONE -bench=BrokerGET/tcp -benchtime=20000x -cpuprofile cpu.out ./bench/inproc/
//	go tool pprof -top -nodecount=40 cpu.out
//
// The programs log at info to a discarded text handler: the formatting
// cost is in the profile, the write to stderr is not.
package inproc
