package jira

// fileOperations are the operations whose answer is a file (attachment
// content, thumbnails, avatar images) rather than a document of the API:
// their bodies are passed on byte for byte, whatever their content type.
var fileOperations = map[string]bool{
	"getAttachmentContent":   true,
	"getAttachmentThumbnail": true,
	"getAvatarImageByType":   true,
	"getAvatarImageByID":     true,
	"getAvatarImageByOwner":  true,
}

// ServesFile reports whether operation id answers with a file, such as an
// attachment's content, whose bytes must not be rewritten even when its
// content type is text or JSON.
func ServesFile(id string) bool { return fileOperations[id] }
