// Package ui renders the status pages of both programs on their admin
// listener: html/template pages rendered on the server, so that a page
// shows its data without JavaScript, and one style sheet and one small
// script (which refreshes the page's live parts and runs the check),
// embedded in the binary. No inline script or style: the pages work
// under the strict Content-Security-Policy that package admin sets.
//
// The pages render the same values the JSON API serves; ui knows them
// only by their field names, so that it imports neither the agent nor
// the gateway.
package ui

import (
	"bytes"
	"embed"
	"encoding/json"
	"html/template"
	"io/fs"
	"net/http"
)

//go:embed templates/*.html assets/*
var files embed.FS

var pages = template.Must(template.New("").Funcs(funcs).ParseFS(files, "templates/*.html"))

// Render writes the page named page ("agent", "gateway") of data.
func Render(w http.ResponseWriter, page string, data any) {
	var b bytes.Buffer
	if err := pages.ExecuteTemplate(&b, page, data); err != nil {
		http.Error(w, "the page could not be rendered: "+err.Error(), http.StatusInternalServerError)
		return
	}
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	w.Write(b.Bytes())
}

// WriteJSON writes v as the JSON answer of an API call.
func WriteJSON(w http.ResponseWriter, v any) {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		http.Error(w, "cannot encode the answer", http.StatusInternalServerError)
		return
	}
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	w.Write(append(b, '\n'))
}

// AssetPrefix is where Assets serves.
const AssetPrefix = "/assets/"

// Assets serves the style sheet and the script under AssetPrefix.
func Assets() http.Handler {
	sub, err := fs.Sub(files, "assets")
	if err != nil { // not reached: the directory is embedded
		panic(err)
	}
	return http.StripPrefix(AssetPrefix, http.FileServerFS(sub))
}
