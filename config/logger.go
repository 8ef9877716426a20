package config

import (
	"io"
	"log/slog"
)

// NewLogger returns the logger that log.level and log.format describe,
// writing to w. Unknown values (refused by Validate) fall back to info and
// text.
func (l Log) NewLogger(w io.Writer) *slog.Logger {
	var level slog.Level
	switch l.Level {
	case "debug":
		level = slog.LevelDebug
	case "warn":
		level = slog.LevelWarn
	case "error":
		level = slog.LevelError
	}
	opts := &slog.HandlerOptions{Level: level}
	if l.Format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}
