package webui_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"regexp"

	"github.com/gorilla/mux"

	"github.com/karat-go/karat/drivers"
	"github.com/karat-go/karat/httpapi"
	"github.com/karat-go/karat/httpapi/demo"
	"github.com/karat-go/karat/webui"
)

// Mount the pages next to the API on the memory store, sign in through the
// form and read the devices page.
func ExampleUI_Mount() {
	ctx := context.Background()
	s, err := drivers.Open(ctx, "memory://")
	if err != nil {
		panic(err)
	}
	defer s.Close()
	users, err := demo.NewUsers("example password", 4)
	if err != nil {
		panic(err)
	}
	api, err := httpapi.New(s, users, demo.NewCatalogue(nil), &httpapi.Options{
		SessionSecrets: [][]byte{[]byte("an example secret of 32 bytes or more")},
	})
	if err != nil {
		panic(err)
	}
	r := mux.NewRouter()
	api.Mount(r)
	ui, err := webui.New(api, nil)
	if err != nil {
		panic(err)
	}
	ui.Mount(r)
	srv := httptest.NewServer(r)
	defer srv.Close()

	jar, _ := cookiejar.New(nil)
	browser := &http.Client{Jar: jar}
	res, err := browser.PostForm(srv.URL+"/signin", url.Values{
		"tenant": {"tehran-gold"}, "email": {"owner@tehran-gold.test"}, "password": {"example password"},
	})
	if err != nil {
		panic(err)
	}
	defer res.Body.Close()
	page, err := io.ReadAll(res.Body)
	if err != nil {
		panic(err)
	}
	fmt.Println(res.StatusCode, res.Request.URL.Path)
	fmt.Println(regexp.MustCompile(`<h1>[^<]*</h1>`).FindString(string(page)))
	fmt.Println(regexp.MustCompile(`Signed in as <bdi>[^<]*</bdi>`).FindString(string(page)))
	// Output:
	// 200 /devices
	// <h1>Your devices</h1>
	// Signed in as <bdi>رضا تهرانی</bdi>
}
