package webui

import "strings"

// Agent is what the devices page shows of a User-Agent: the browser with
// its major version and the kind of device. It is a best-effort reading of
// a header any client can set, for people to recognise their devices; it is
// never used for a security decision.
type Agent struct {
	Browser string // "Chrome 131", "Safari 17", "Firefox 133", "curl 8"
	Device  string // "iPhone", "Android phone", "Windows", "Mac", "Linux", ...
}

// ParseUserAgent reads a User-Agent header.
func ParseUserAgent(ua string) Agent {
	return Agent{Browser: browserOf(ua), Device: deviceOf(ua)}
}

// String is "Chrome 131 on Windows".
func (a Agent) String() string { return a.Browser + " on " + a.Device }

// browsers are matched in order: Edge and Opera also say Chrome, Chrome
// also says Safari.
var browsers = []struct{ token, name string }{
	{"EdgiOS/", "Edge"}, {"EdgA/", "Edge"}, {"Edg/", "Edge"},
	{"OPR/", "Opera"}, {"SamsungBrowser/", "Samsung Internet"},
	{"FxiOS/", "Firefox"}, {"Firefox/", "Firefox"},
	{"CriOS/", "Chrome"}, {"HeadlessChrome/", "Headless Chrome"}, {"Chromium/", "Chromium"}, {"Chrome/", "Chrome"},
	{"curl/", "curl"}, {"Wget/", "Wget"}, {"Go-http-client/", "Go HTTP client"},
}

func browserOf(ua string) string {
	if ua == "" {
		return "Unknown browser"
	}
	for _, b := range browsers {
		if i := strings.Index(ua, b.token); i >= 0 {
			return withMajor(b.name, ua[i+len(b.token):])
		}
	}
	if strings.Contains(ua, "Safari/") {
		if i := strings.Index(ua, "Version/"); i >= 0 {
			return withMajor("Safari", ua[i+len("Version/"):])
		}
		return "Safari"
	}
	return "Unknown browser"
}

// withMajor appends the major version that starts rest ("131.0.0.0 ...").
func withMajor(name, rest string) string {
	end := 0
	for end < len(rest) && end < 6 && rest[end] >= '0' && rest[end] <= '9' {
		end++
	}
	if end == 0 {
		return name
	}
	return name + " " + rest[:end]
}

func deviceOf(ua string) string {
	switch {
	case ua == "":
		return "Unknown device"
	case strings.Contains(ua, "iPhone"):
		return "iPhone"
	case strings.Contains(ua, "iPad"):
		return "iPad"
	case strings.Contains(ua, "Android"):
		if strings.Contains(ua, "Mobile") {
			return "Android phone"
		}
		return "Android tablet"
	case strings.Contains(ua, "Windows"):
		return "Windows"
	case strings.Contains(ua, "CrOS"):
		return "ChromeOS"
	case strings.Contains(ua, "Macintosh"), strings.Contains(ua, "Mac OS X"):
		return "Mac"
	case strings.Contains(ua, "Linux"):
		return "Linux"
	case strings.HasPrefix(ua, "curl/"), strings.HasPrefix(ua, "Wget/"), strings.HasPrefix(ua, "Go-http-client/"):
		return "command line"
	}
	return "Unknown device"
}
