package gate_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"

	"github.com/apptokens/apptokens/internal/gate"
	"github.com/apptokens/apptokens/store"
	"github.com/apptokens/apptokens/store/storetest"
)

// A service that embeds the gate: the middleware refuses requests without a
// valid token granting Security Director, and tells the handler which token
// called through X-Token-Name (a client's own X-Token-* headers are dropped).
func ExampleGate_Middleware() {
	st, err := storetest.OpenWith(storetest.Options{InMemory: true})
	if err != nil {
		panic(err)
	}
	defer st.Close()
	created, err := st.Create(store.Actor{User: "admin"}, store.NewToken{
		Name: "reporting", Access: []store.Access{store.AccessSecurityDirector},
	})
	if err != nil {
		panic(err)
	}

	g, err := gate.New(gate.Config{Store: st})
	if err != nil {
		panic(err)
	}
	ctx, stop := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- g.Run(ctx) }() // flushes usage to the store every second

	api := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "hello, %s", r.Header.Get("X-Token-Name"))
	})
	mux := http.NewServeMux()
	mux.Handle("/reports/", g.Middleware(store.AccessSecurityDirector)(api))
	srv := httptest.NewServer(mux)
	defer srv.Close()

	for _, token := range []string{created.Secret.Reveal(), ""} {
		req, _ := http.NewRequest(http.MethodGet, srv.URL+"/reports/daily", nil)
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		req.Header.Set("X-Token-Name", "someone-else")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			panic(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		fmt.Printf("%d %s %s\n", resp.StatusCode, resp.Header.Get("X-Apptokens-Reason"), strings.TrimSpace(string(body)))
	}

	stop()
	if err := <-done; err != nil {
		panic(err)
	}
	usage, _ := st.Usage("reporting")
	fmt.Println(usage[0].IP, usage[0].Allowed)
	// Output:
	// 200 ok hello, reporting
	// 401 missing_token {"error":"missing_token"}
	// 127.0.0.1 1
}
