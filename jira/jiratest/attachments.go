package jiratest

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"path"
	"strconv"
	"time"
)

// keepLimit is the size up to which uploaded content is kept, so that it
// can be downloaded back. Larger uploads are only counted and hashed: a
// test may push hundreds of MiB through the broker, and the stand-in must
// not hold them.
const keepLimit = 1 << 20

// AttachmentInfo describes an attachment the stand-in holds.
type AttachmentInfo struct {
	ID       string
	IssueKey string
	Filename string
	MimeType string
	Size     int64
	// SHA256 is the hex SHA-256 of an uploaded attachment's content. It is
	// empty for a synthetic one (see AddAttachment), whose content is
	// SyntheticContent(Size).
	SHA256    string
	Synthetic bool
}

type attachment struct {
	info    AttachmentInfo
	author  user
	created time.Time
	data    []byte // the content of uploads of at most keepLimit bytes
}

// open returns the attachment's content, if the stand-in has it.
func (a *attachment) open() (io.ReadSeeker, bool) {
	switch {
	case a.info.Synthetic:
		return SyntheticContent(a.info.Size), true
	case a.info.Size <= keepLimit:
		return bytes.NewReader(a.data), true
	}
	return nil, false
}

type attachmentJSON struct {
	Self     string   `json:"self"`
	ID       string   `json:"id"`
	Filename string   `json:"filename"`
	Author   userJSON `json:"author"`
	Created  string   `json:"created"`
	Size     int64    `json:"size"`
	MimeType string   `json:"mimeType"`
	Content  string   `json:"content"`
}

func (c call) attachmentJSON(a *attachment) attachmentJSON {
	return attachmentJSON{
		Self:     c.url("attachment/%s", a.info.ID),
		ID:       a.info.ID,
		Filename: a.info.Filename,
		Author:   c.userJSON(a.author),
		Created:  jiraTime(a.created),
		Size:     a.info.Size,
		MimeType: a.info.MimeType,
		Content:  c.url("attachment/content/%s", a.info.ID),
	}
}

// SyntheticContent returns the content of a synthetic attachment of size
// bytes: a deterministic pseudo-random stream, generated as it is read,
// in which every 8-byte word differs, so that lost, repeated or reordered
// chunks change its hash. Hash it to check a download.
func SyntheticContent(size int64) *io.SectionReader {
	return io.NewSectionReader(synthetic{}, 0, size)
}

// synthetic is an endless io.ReaderAt: word k (bytes 8k to 8k+7, little
// endian) is splitmix64 of k.
type synthetic struct{}

func (synthetic) ReadAt(p []byte, off int64) (int, error) {
	var w uint64
	for i := range p {
		pos := off + int64(i)
		if i == 0 || pos%8 == 0 {
			w = splitmix64(uint64(pos / 8))
		}
		p[i] = byte(w >> (8 * (pos % 8)))
	}
	return len(p), nil
}

func splitmix64(k uint64) uint64 {
	z := (k + 1) * 0x9e3779b97f4a7c15
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
	z = (z ^ (z >> 27)) * 0x94d049bb133111eb
	return z ^ (z >> 31)
}

// AddAttachment attaches to the issue a synthetic file of size bytes, whose
// content (SyntheticContent) is generated when downloaded rather than held,
// and returns its id. It panics if the issue does not exist.
func (s *Server) AddAttachment(issueKey, filename string, size int64) (id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	is := s.lookup(issueKey)
	if is == nil {
		panic(fmt.Sprintf("jiratest: AddAttachment: no issue %q", issueKey))
	}
	a := &attachment{
		info: AttachmentInfo{
			Filename:  filename,
			MimeType:  mimeType(filename, ""),
			Size:      size,
			Synthetic: true,
		},
		author:  s.defaultUser(),
		created: time.Now(),
	}
	s.attach(is, a)
	return a.info.ID
}

// Attachment returns what the stand-in knows of attachment id.
func (s *Server) Attachment(id string) (AttachmentInfo, bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	a, ok := s.attachments[id]
	if !ok {
		return AttachmentInfo{}, false
	}
	return a.info, true
}

// attach numbers a and adds it to is. The caller holds s.mu for writing.
func (s *Server) attach(is *issue, a *attachment) {
	a.info.ID = strconv.Itoa(s.nextAttach)
	a.info.IssueKey = is.key
	s.nextAttach++
	s.attachments[a.info.ID] = a
	is.attachments = append(is.attachments, a)
}

func mimeType(filename, declared string) string {
	if declared != "" {
		return declared
	}
	if t := mime.TypeByExtension(path.Ext(filename)); t != "" {
		return t
	}
	return "application/octet-stream"
}

func (s *Server) uploadAttachments(w http.ResponseWriter, r *http.Request, c call) {
	// Jira refuses uploads without this header (its XSRF protection), in
	// plain text.
	if t := r.Header.Get("X-Atlassian-Token"); t != "no-check" && t != "nocheck" {
		http.Error(w, "XSRF check failed", http.StatusForbidden)
		return
	}
	key := r.PathValue("key")
	s.mu.RLock()
	exists := s.lookup(key) != nil
	s.mu.RUnlock()
	if !exists {
		noIssue(w)
		return
	}
	mr, err := r.MultipartReader()
	if err != nil {
		badRequest(w, "Attachments must be sent as multipart/form-data: "+err.Error())
		return
	}
	var got []*attachment
	for {
		part, err := mr.NextPart()
		if err == io.EOF {
			break
		}
		if err != nil {
			badRequest(w, "Reading the multipart body failed: "+err.Error())
			return
		}
		if part.FormName() != "file" {
			continue // NextPart discards what is left of it
		}
		a, err := receive(part)
		if err != nil {
			badRequest(w, "Reading the attachment failed: "+err.Error())
			return
		}
		got = append(got, a)
	}
	if len(got) == 0 {
		badRequest(w, "No file was found in the multipart field 'file'.")
		return
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	is := s.lookup(key)
	if is == nil { // deleted during the upload
		noIssue(w)
		return
	}
	out := make([]attachmentJSON, 0, len(got))
	for _, a := range got {
		a.author = c.user
		s.attach(is, a)
		out = append(out, c.attachmentJSON(a))
	}
	is.updated = time.Now()
	writeJSON(w, http.StatusOK, out)
}

// receive streams one uploaded file, counting and hashing it and keeping
// it only if it is small.
func receive(part *multipart.Part) (*attachment, error) {
	h := sha256.New()
	var k keeper
	n, err := io.Copy(io.MultiWriter(h, &k), part)
	if err != nil {
		return nil, err
	}
	name := part.FileName()
	if name == "" {
		name = "attachment"
	}
	return &attachment{
		info: AttachmentInfo{
			Filename: name,
			MimeType: mimeType(name, part.Header.Get("Content-Type")),
			Size:     n,
			SHA256:   hex.EncodeToString(h.Sum(nil)),
		},
		created: time.Now(),
		data:    k.buf,
	}, nil
}

// keeper keeps what is written to it up to keepLimit bytes, and drops it
// all once more arrives.
type keeper struct {
	buf []byte
	n   int64
}

func (k *keeper) Write(p []byte) (int, error) {
	k.n += int64(len(p))
	if k.n <= keepLimit {
		k.buf = append(k.buf, p...)
	} else {
		k.buf = nil
	}
	return len(p), nil
}

func (s *Server) attachmentMeta(w http.ResponseWriter, r *http.Request, c call) {
	id := r.PathValue("id")
	s.mu.RLock()
	a, ok := s.attachments[id]
	var v attachmentJSON
	if ok {
		v = c.attachmentJSON(a)
	}
	s.mu.RUnlock()
	if !ok {
		noAttachment(w, id)
		return
	}
	writeJSON(w, http.StatusOK, v)
}

func (s *Server) attachmentContent(w http.ResponseWriter, r *http.Request, c call) {
	id := r.PathValue("id")
	s.mu.RLock()
	a, ok := s.attachments[id]
	s.mu.RUnlock()
	if !ok {
		noAttachment(w, id)
		return
	}
	// An attachment never changes once added, so a needs no lock from here.
	content, ok := a.open()
	if !ok {
		writeError(w, http.StatusNotFound, []string{fmt.Sprintf(
			"The content of attachment '%s' (%d bytes) was larger than %d bytes and was not kept by the Jira stand-in.",
			id, a.info.Size, keepLimit)}, nil)
		return
	}
	w.Header().Set("Content-Type", a.info.MimeType)
	// ServeContent answers Range requests too, which download clients use
	// to resume.
	http.ServeContent(w, r, a.info.Filename, a.created, content)
}

func noAttachment(w http.ResponseWriter, id string) {
	writeError(w, http.StatusNotFound, []string{fmt.Sprintf("The attachment with id '%s' does not exist", id)}, nil)
}
