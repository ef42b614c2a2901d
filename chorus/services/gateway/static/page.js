// The shop front's small enhancements; the page works without them.
// 1. The basket is remembered in this browser (localStorage): a visit whose address names no basket gets the one
//    kept, and the address bar shows the page's own address (without "add" or "remove", so reloading adds nothing).
// 2. Title suggestions under the search box, from GET /v1/items as the user types.
// 3. Adding or removing a product keeps the scroll position.
"use strict";
(function () {
  const KEY = "chorus-basket";
  const body = document.body;
  try {
    if (body.dataset.basketGiven === "yes") {
      localStorage.setItem(KEY, body.dataset.basket);
    } else {
      const kept = localStorage.getItem(KEY);
      if (kept) {
        const url = new URL(location.href);
        url.searchParams.set("basket", kept);
        location.replace(url);
        return;
      }
    }
  } catch (e) {
    // storage refused (private mode): the basket lives in the address only
  }
  if (body.dataset.here && location.pathname + location.search !== body.dataset.here) {
    history.replaceState(null, "", body.dataset.here + location.hash);
  }

  const SCROLL = "chorus-scroll";
  const saved = sessionStorage.getItem(SCROLL);
  if (saved !== null) {
    sessionStorage.removeItem(SCROLL);
    window.scrollTo(0, Number(saved));
  }
  for (const form of document.querySelectorAll("form.add, form.remove")) {
    form.addEventListener("submit", () => sessionStorage.setItem(SCROLL, String(window.scrollY)));
  }

  const input = document.getElementById("q");
  const list = document.getElementById("suggestions");
  if (!input || !list) return;
  let timer = 0;
  let asked = "";
  input.addEventListener("input", () => {
    clearTimeout(timer);
    timer = setTimeout(suggest, 150);
  });
  async function suggest() {
    const q = input.value.trim();
    if (q.length < 2 || q === asked) return;
    asked = q;
    try {
      const answer = await fetch("/v1/items?" + new URLSearchParams({ q: q, limit: "8" }));
      if (!answer.ok || input.value.trim() !== q) return;
      const found = await answer.json();
      list.replaceChildren(
        ...found.data.filter((d) => d.title).map((d) => {
          const option = document.createElement("option");
          option.value = d.title;
          return option;
        })
      );
    } catch (e) {
      // no suggestions this time; the search itself still works
    }
  }
})();
