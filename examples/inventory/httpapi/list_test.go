package httpapi_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/annals-db/annals/examples/inventory/httpapi"
	"github.com/stretchr/testify/require"
)

// list gets a page of GET /items and checks the answer's shape.
func (e *env) list(t *testing.T, query string) (httpapi.ItemList, response) {
	t.Helper()
	resp := e.do(t, "GET", "/items"+query, "")
	require.Equal(t, http.StatusOK, resp.Status, resp)
	require.Empty(t, resp.Header.Get("ETag"), "a list has no version to match")
	var page httpapi.ItemList
	require.NoError(t, json.Unmarshal(resp.Body, &page), string(resp.Body))
	require.NotNil(t, page.Items, "an empty list, not null: %s", resp.Body)
	return page, resp
}

func skus(page httpapi.ItemList) []string {
	out := []string{}
	for _, it := range page.Items {
		out = append(out, it.SKU)
	}
	return out
}

// walk follows the pages of GET /items from query, checking that next_after and the Link header
// agree, and returns every SKU and the number of pages.
func (e *env) walk(t *testing.T, query string, limit int) (all []string, pages int) {
	t.Helper()
	all = []string{}
	for pages = 1; pages < 1000; pages++ {
		page, resp := e.list(t, query)
		all = append(all, skus(page)...)
		if page.NextAfter == nil {
			require.Empty(t, resp.Header.Get("Link"))
			return all, pages
		}
		require.Len(t, page.Items, limit, "only the last page is short")
		require.Equal(t, page.Items[len(page.Items)-1].SKU, *page.NextAfter, "the cursor is the page's last SKU")
		query = fmt.Sprintf("?after=%s&limit=%d", *page.NextAfter, limit)
		require.Equal(t, "</items"+query+`>; rel="next"`, resp.Header.Get("Link"))
	}
	require.FailNow(t, "no last page")
	return nil, 0
}

func TestListItems(t *testing.T) {
	t.Parallel()
	e := newEnv(t, httpapi.Options{})

	page, resp := e.list(t, "")
	require.JSONEq(t, `{"items": []}`, string(resp.Body), "no items yet")
	require.Nil(t, page.NextAfter)
	require.Empty(t, resp.Header.Get("Link"))

	// Created out of order; SKUs of digits and lower-case letters sort alike in every collation.
	for i, sku := range []string{"i05", "i02", "i07", "i01", "i06", "i03", "i04"} {
		e.create(t, sku, "Item "+sku, 10*(i+1))
	}
	require.Equal(t, http.StatusOK, e.adjust(t, "i03", -5, "").Status)
	want := []string{"i01", "i02", "i03", "i04", "i05", "i06", "i07"}

	t.Run("one page: every item as GET /items/{sku} answers it", func(t *testing.T) {
		t.Parallel()
		page, resp := e.list(t, "")
		require.Equal(t, want, skus(page))
		require.Nil(t, page.NextAfter)
		require.Empty(t, resp.Header.Get("Link"))
		for _, it := range page.Items {
			one := e.do(t, "GET", "/items/"+it.SKU, "")
			require.Equal(t, http.StatusOK, one.Status, one)
			require.Equal(t, one.item(t), it)
			require.NotNil(t, it.UpdatedAt)
			require.WithinDuration(t, time.Now(), *it.UpdatedAt, time.Minute)
		}
		require.Equal(t, 55, page.Items[2].Count, "i03 after its adjustment: the read model reads its writes")
		require.Equal(t, int64(2), page.Items[2].Version)
	})

	t.Run("pages: keyset by SKU, the Link header and next_after lead on", func(t *testing.T) {
		t.Parallel()
		for limit, pages := range map[int]int{1: 7, 2: 4, 3: 3, 6: 2, 7: 1, 8: 1, 1000: 1} {
			all, n := e.walk(t, fmt.Sprintf("?limit=%d", limit), limit)
			require.Equal(t, want, all, "limit %d", limit)
			require.Equal(t, pages, n, "limit %d", limit)
		}
		page, _ := e.list(t, "?limit=3")
		require.Equal(t, []string{"i01", "i02", "i03"}, skus(page))
		require.Equal(t, "i03", *page.NextAfter)
	})

	t.Run("after: any SKU, existing or not", func(t *testing.T) {
		t.Parallel()
		page, _ := e.list(t, "?after=i03")
		require.Equal(t, []string{"i04", "i05", "i06", "i07"}, skus(page))
		page, _ = e.list(t, "?after=i035&limit=2")
		require.Equal(t, []string{"i04", "i05"}, skus(page))
		require.Equal(t, "i05", *page.NextAfter)
		page, _ = e.list(t, "?after=i0")
		require.Equal(t, want, skus(page))
		page, resp := e.list(t, "?after=i07")
		require.Empty(t, page.Items, "past the end: an empty page")
		require.Nil(t, page.NextAfter)
		require.Empty(t, resp.Header.Get("Link"))
		require.JSONEq(t, `{"items": []}`, string(resp.Body))
	})

	t.Run("HEAD", func(t *testing.T) {
		t.Parallel()
		resp := e.do(t, "HEAD", "/items?limit=2", "")
		require.Equal(t, http.StatusOK, resp.Status)
		require.Empty(t, resp.Body)
		require.Equal(t, `</items?after=i02&limit=2>; rel="next"`, resp.Header.Get("Link"))
	})
}

// The default page is 50 items.
func TestListItemsDefaultLimit(t *testing.T) {
	t.Parallel()
	e := newEnv(t, httpapi.Options{})
	var want []string
	for i := range httpapi.DefaultListLimit + 1 {
		sku := fmt.Sprintf("d%03d", i)
		e.create(t, sku, "Default", 1)
		want = append(want, sku)
	}
	page, resp := e.list(t, "")
	require.Len(t, page.Items, httpapi.DefaultListLimit)
	require.Equal(t, want[httpapi.DefaultListLimit-1], *page.NextAfter)
	require.Equal(t, fmt.Sprintf(`</items?after=%s&limit=%d>; rel="next"`, want[httpapi.DefaultListLimit-1], httpapi.DefaultListLimit),
		resp.Header.Get("Link"))
	all, pages := e.walk(t, "", httpapi.DefaultListLimit)
	require.Equal(t, want, all)
	require.Equal(t, 2, pages)
}
