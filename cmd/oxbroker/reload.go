package main

import (
	"context"
	"errors"
	"io/fs"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"time"

	"github.com/fsnotify/fsnotify"

	"github.com/oxsecurity/oxbroker/agent"
	"github.com/oxsecurity/oxbroker/config"
)

// reloadDebounce lets an editor or a secret manager finish writing (often
// several events: truncate, write, rename) before the config is read.
const reloadDebounce = 500 * time.Millisecond

// watchReload reloads the agent's config on SIGHUP (Unix) and whenever the
// config file, a token file it names or a stored secret changes (every
// platform, and the only way on Windows). A config that does not load is logged and the
// running one kept. It returns when ctx ends.
func watchReload(ctx context.Context, path string, cfg *config.Agent, a *agent.Agent, log *slog.Logger) {
	hup := make(chan os.Signal, 1)
	if sigs := reloadSignals(); len(sigs) > 0 {
		signal.Notify(hup, sigs...)
		defer signal.Stop(hup)
	}
	w, err := fsnotify.NewWatcher()
	if err != nil {
		log.Warn("cannot watch the config file; reload with SIGHUP only", "err", err)
	} else {
		defer w.Close()
	}
	watched := watchFiles(w, path, cfg, log)

	var events <-chan fsnotify.Event
	if w != nil {
		events = w.Events
	}
	var debounce <-chan time.Time
	for {
		select {
		case <-ctx.Done():
			return
		case <-hup:
			log.Info("SIGHUP: reloading the config", "path", path)
			watched = reload(ctx, path, a, w, watched, log)
		case ev := <-events:
			if watched[filepath.Clean(ev.Name)] || secrets.isSecretFile(filepath.Clean(ev.Name)) {
				debounce = time.After(reloadDebounce)
			}
		case <-debounce:
			debounce = nil
			log.Info("config or token file changed: reloading", "path", path)
			watched = reload(ctx, path, a, w, watched, log)
		}
	}
}

func reload(ctx context.Context, path string, a *agent.Agent, w *fsnotify.Watcher, watched map[string]bool, log *slog.Logger) map[string]bool {
	cfg, err := config.LoadAgent(path, lookupEnv())
	if err == nil {
		err = a.Reload(ctx, cfg)
	}
	if err != nil {
		log.Error("config reload failed; keeping the running config", "path", path, "err", err)
		return watched
	}
	logWarnings(log, path, cfg)
	return watchFiles(w, path, cfg, log)
}

// watchFiles watches the folders of the config and its token files (files
// are often replaced by rename, which a watch on the file itself misses)
// and returns the set of file paths whose changes matter.
func watchFiles(w *fsnotify.Watcher, path string, cfg *config.Agent, log *slog.Logger) map[string]bool {
	files := []string{path, cfg.Broker.TokenFile}
	for _, s := range cfg.Sites {
		files = append(files, s.Auth.TokenFile, s.TLS.CAFile)
	}
	watched := make(map[string]bool)
	if w != nil && secrets.dir != "" {
		// "oxbroker secret set" replaces a file there (Windows).
		if err := w.Add(secrets.dir); err != nil && !errors.Is(err, fs.ErrNotExist) {
			log.Warn("cannot watch the secrets folder for changes", "dir", secrets.dir, "err", err)
		}
	}
	for _, f := range files {
		if f == "" {
			continue
		}
		abs, err := filepath.Abs(f)
		if err != nil {
			continue
		}
		watched[abs] = true
		if w != nil {
			if err := w.Add(filepath.Dir(abs)); err != nil {
				log.Warn("cannot watch a folder for config changes", "dir", filepath.Dir(abs), "err", err)
			}
		}
	}
	return watched
}
