package brokerhttp

import "net/http"

// StatusRecorder is the status recorder of every broker handler: a
// ResponseWriter that records the status and the body bytes of the
// response written through it, for logs and metrics.
//
// Informational responses (1xx) are passed on but not recorded: they
// precede the real answer, so a POST sent with "Expect: 100-continue" that
// Jira answers with 100 and then 201 counts as 201. 101 Switching
// Protocols ends the HTTP exchange and is recorded.
type StatusRecorder struct {
	http.ResponseWriter
	// Status is the final status written, 0 until there is one (and when
	// the handler wrote nothing, as when the caller went away).
	Status int
	// Bytes counts the body bytes written.
	Bytes int64
}

// WriteHeader records the first final status and passes code on.
func (w *StatusRecorder) WriteHeader(code int) {
	if w.Status == 0 && (code >= 200 || code == http.StatusSwitchingProtocols) {
		w.Status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *StatusRecorder) Write(b []byte) (int, error) {
	if w.Status == 0 {
		w.Status = http.StatusOK
	}
	n, err := w.ResponseWriter.Write(b)
	w.Bytes += int64(n)
	return n, err
}

// Flush sends what is buffered, for handlers that check for http.Flusher.
func (w *StatusRecorder) Flush() {
	_ = http.NewResponseController(w.ResponseWriter).Flush()
}

// Unwrap gives http.ResponseController the writer underneath.
func (w *StatusRecorder) Unwrap() http.ResponseWriter { return w.ResponseWriter }
