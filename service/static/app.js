// Poshuk search page: a plain client of the public HTTP API (no build step, no dependencies).
//
// Safety: text from the API (titles, passages, error details) only ever reaches the page
// through textContent and DOM nodes, never parsed as markup; links only for http(s) URLs.
// The page is served with a CSP that forbids inline script, so everything lives here.

"use strict";

(() => {
  const PAGE_SIZE = 10;
  const SIMILAR_K = 5;
  const LANG_KEY = "poshuk.uiLang";

  const MESSAGES = {
    uk: {
      title: "Пошук — семантичний пошук новин",
      brand: "Пошук",
      tagline: "Семантичний пошук по архіву новин — українською та англійською",
      skip: "Перейти до результатів",
      queryLabel: "Пошуковий запит",
      placeholder: "Наприклад: переговори про постачання боєприпасів",
      search: "Шукати",
      kbdHint: "Натисніть «/», щоб перейти до пошуку, Enter — щоб шукати.",
      optionsLegend: "Параметри пошуку",
      modeLabel: "Режим",
      modeHybrid: "Гібридний",
      modeDense: "За змістом",
      modeLexical: "За словами",
      sortLabel: "Порядок",
      sortRelevance: "Найвідповідніші",
      sortNewest: "Спершу нові",
      sortOldest: "Спершу давні",
      langLabel: "Мова статті",
      langAll: "Усі мови",
      langUk: "Українська",
      langEn: "Англійська",
      sourceLabel: "Джерело",
      sourcePlaceholder: "напр. Київський вісник",
      fromLabel: "Від дати",
      toLabel: "До дати",
      resetFilters: "Скинути фільтри",
      resultsHeading: "Результати",
      pagerLabel: "Сторінки результатів",
      prev: "← Попередня",
      next: "Наступна →",
      page: (n) => `Сторінка ${n}`,
      footer: "Пошук за змістом і словами по проіндексованих статтях.",
      apiLink: "API",
      switchTo: "English",
      switchToLang: "en",
      loading: "Шукаю…",
      found: (first, last, ms) => `Результати ${first}–${last} · ${ms} мс`,
      emptyTitle: "Нічого не знайдено",
      emptyHint: "Спробуйте інші слова, інший режим або приберіть фільтри.",
      facetsLabel: "Уточнити результати",
      feedLink: "Стрічка Atom цього пошуку (спершу нові)",
      pageOf: (n) => `с. ${n}`,
      otherPages: "Також у документі:",
      showPage: (n) => `Показати текст с. ${n}`,
      openPage: (n) => `Відкрити с. ${n} документа`,
      pageLoading: "Завантажую сторінку…",
      pageErrorTitle: "Не вдалося показати сторінку",
      alertSummary: "Сповіщати про нові статті за цим пошуком",
      alertKeyLabel: "Ключ API",
      alertSave: "Зберегти сповіщення",
      alertSaving: "Зберігаю…",
      alertSaved: "Сповіщення збережено. Нові статті за ним — у стрічці:",
      alertFeed: "стрічка Atom сповіщення",
      alertFailed: (detail) => `Не вдалося зберегти сповіщення: ${detail}`,
      facetNames: { source: "Джерело", lang: "Мова", month: "Місяць" },
      facetApply: (name, value, count) => `${name}: ${value}, статей: ${count}`,
      emptyPage: "На цій сторінці результатів більше немає.",
      enterQuery: "Введіть запит, щоб шукати.",
      morePassages: (n) => `+${n} ${plural(n, "ще уривок", "ще уривки", "ще уривків")} у цій статті`,
      similar: "Схожі матеріали",
      similarHide: "Сховати схожі",
      similarLoading: "Шукаю схожі матеріали…",
      similarEmpty: "Схожих матеріалів не знайдено.",
      similarHeading: (title) => `Схожі на «${title}»`,
      noTitle: "(без заголовка)",
      opensInNewTab: "(відкриється в новій вкладці)",
      matchTerms: "збіг слів запиту",
      matchSentence: "речення, найближче за змістом",
      lang: { uk: "українська", en: "англійська" },
      errorTitle: "Не вдалося виконати пошук",
      similarErrorTitle: "Не вдалося знайти схожі матеріали",
      errorStatus: {
        400: "Запит некоректний",
        404: "Не знайдено",
        413: "Запит завеликий",
        503: "Індекс ще завантажується або недоступний — спробуйте за кілька секунд",
        500: "Помилка сервера",
      },
      errorHttp: (status) => `Сервер відповів помилкою ${status}`,
      errorNetwork: "Сервер недоступний. Перевірте з'єднання або чи запущено сервіс, і спробуйте ще раз.",
      errorBadResponse: "Сервер надіслав незрозумілу відповідь.",
    },
    en: {
      title: "Poshuk — semantic news search",
      brand: "Poshuk",
      tagline: "Semantic search over the news archive — in Ukrainian and English",
      skip: "Skip to results",
      queryLabel: "Search query",
      placeholder: "For example: ammunition supply talks",
      search: "Search",
      kbdHint: "Press “/” to jump to the search box, Enter to search.",
      optionsLegend: "Search options",
      modeLabel: "Mode",
      modeHybrid: "Hybrid",
      modeDense: "By meaning",
      modeLexical: "By words",
      sortLabel: "Order",
      sortRelevance: "Most relevant",
      sortNewest: "Newest first",
      sortOldest: "Oldest first",
      langLabel: "Article language",
      langAll: "All languages",
      langUk: "Ukrainian",
      langEn: "English",
      sourceLabel: "Source",
      sourcePlaceholder: "e.g. Kyiv Ledger",
      fromLabel: "From date",
      toLabel: "To date",
      resetFilters: "Clear filters",
      resultsHeading: "Results",
      pagerLabel: "Result pages",
      prev: "← Previous",
      next: "Next →",
      page: (n) => `Page ${n}`,
      footer: "Search by meaning and by words over the indexed articles.",
      apiLink: "API",
      switchTo: "Українська",
      switchToLang: "uk",
      loading: "Searching…",
      found: (first, last, ms) => `Results ${first}–${last} · ${ms} ms`,
      emptyTitle: "Nothing found",
      emptyHint: "Try other words, another mode, or clear the filters.",
      facetsLabel: "Narrow the results",
      feedLink: "Atom feed of this search (newest first)",
      pageOf: (n) => `p. ${n}`,
      otherPages: "Also in this document:",
      showPage: (n) => `Show the text of p. ${n}`,
      openPage: (n) => `Open p. ${n} of the document`,
      pageLoading: "Loading the page…",
      pageErrorTitle: "Could not show the page",
      alertSummary: "Alert me to new articles for this search",
      alertKeyLabel: "API key",
      alertSave: "Save alert",
      alertSaving: "Saving…",
      alertSaved: "Alert saved. New articles that match it appear in its feed:",
      alertFeed: "the alert's Atom feed",
      alertFailed: (detail) => `Could not save the alert: ${detail}`,
      facetNames: { source: "Source", lang: "Language", month: "Month" },
      facetApply: (name, value, count) => `${name}: ${value}, ${count} articles`,
      emptyPage: "There are no more results on this page.",
      enterQuery: "Type a query to search.",
      morePassages: (n) => `+${n} more ${n === 1 ? "passage" : "passages"} in this article`,
      similar: "Similar stories",
      similarHide: "Hide similar",
      similarLoading: "Looking for similar stories…",
      similarEmpty: "No similar stories found.",
      similarHeading: (title) => `Similar to “${title}”`,
      noTitle: "(untitled)",
      opensInNewTab: "(opens in a new tab)",
      matchTerms: "query words",
      matchSentence: "the sentence closest in meaning",
      lang: { uk: "Ukrainian", en: "English" },
      errorTitle: "The search failed",
      similarErrorTitle: "Could not find similar stories",
      errorStatus: {
        400: "Invalid request",
        404: "Not found",
        413: "Request too large",
        503: "The index is still loading or unavailable — try again in a few seconds",
        500: "Server error",
      },
      errorHttp: (status) => `The server answered with error ${status}`,
      errorNetwork: "The server cannot be reached. Check the connection or whether the service is running, then try again.",
      errorBadResponse: "The server sent a response that could not be read.",
    },
  };

  // Ukrainian plural forms: 1 уривок, 2–4 уривки, 5+ уривків (11–14 take the last form).
  function plural(n, one, few, many) {
    const mod10 = n % 10;
    const mod100 = n % 100;
    if (mod10 === 1 && mod100 !== 11) return one;
    if (mod10 >= 2 && mod10 <= 4 && (mod100 < 12 || mod100 > 14)) return few;
    return many;
  }

  const $ = (id) => document.getElementById(id);
  const els = {
    form: $("search-form"),
    q: $("q"),
    mode: $("mode"),
    sort: $("sort"),
    lang: $("lang"),
    source: $("source"),
    from: $("from"),
    to: $("to"),
    reset: $("reset-filters"),
    uiLang: $("ui-lang"),
    status: $("status"),
    error: $("error"),
    results: $("results"),
    facets: $("facets"),
    feed: $("feed-link"),
    alertBox: $("alert-box"),
    alertForm: $("alert-form"),
    alertKey: $("alert-key"),
    alertResult: $("alert-result"),
    resultsHeading: $("results-heading"),
    pager: $("pager"),
    prev: $("prev"),
    next: $("next"),
    pageLabel: $("page-label"),
  };

  const state = {
    ui: "uk",
    request: null, // the last search sent: {query, mode, sort, filters, offset}
    response: null, // its answer, kept to re-render when the UI language changes
    hasNext: false,
    seq: 0, // guards against an older, slower answer overwriting a newer one
    similar: new Map(), // doc_id -> {status: "loading"|"done"|"error", data, error}
    openSimilar: new Set(),
    documents: new Map(), // doc_id -> Promise of the stored document (its pages' text), per search
    openPages: new Set(), // "doc_id\u0000page" of the pages shown open under their hit
  };

  const t = () => MESSAGES[state.ui];

  // ---- UI language -------------------------------------------------------------------

  function readStoredLang() {
    try {
      const value = window.localStorage.getItem(LANG_KEY);
      return value === "en" || value === "uk" ? value : null;
    } catch (_) {
      return null; // storage disabled: fall back to Ukrainian
    }
  }

  function applyLang(lang, remember) {
    state.ui = lang;
    const m = t();
    document.documentElement.lang = lang;
    document.title = m.title;
    for (const el of document.querySelectorAll("[data-i18n]")) {
      const value = m[el.dataset.i18n];
      if (typeof value === "string") el.textContent = value;
    }
    for (const el of document.querySelectorAll("[data-i18n-placeholder]")) {
      el.placeholder = m[el.dataset.i18nPlaceholder];
    }
    for (const el of document.querySelectorAll("[data-i18n-aria-label]")) {
      el.setAttribute("aria-label", m[el.dataset.i18nAriaLabel]);
    }
    els.uiLang.textContent = m.switchTo;
    els.uiLang.lang = m.switchToLang;
    if (remember) {
      try {
        window.localStorage.setItem(LANG_KEY, lang);
      } catch (_) {
        /* storage disabled: the choice lasts for this page only */
      }
    }
    rerender();
  }

  // ---- Building the request ----------------------------------------------------------

  function currentFilters() {
    const filters = {};
    if (els.lang.value) filters.lang = [els.lang.value];
    const source = els.source.value.trim();
    if (source) filters.source = [source];
    if (els.from.value) filters.published_from = els.from.value;
    if (els.to.value) filters.published_to = els.to.value;
    return Object.keys(filters).length ? filters : null;
  }

  function buildRequest(offset) {
    return {
      query: els.q.value,
      mode: els.mode.value,
      sort: els.sort.value,
      filters: currentFilters(),
      offset,
    };
  }

  // ---- Talking to the API ------------------------------------------------------------

  class ApiError extends Error {
    constructor(status, title, detail) {
      super(detail || title || String(status));
      this.status = status;
      this.title = title;
      this.detail = detail;
    }
  }

  async function api(path, init, listField = "hits") {
    let response;
    try {
      response = await fetch(path, { headers: { Accept: "application/json" }, ...init });
    } catch (_) {
      throw new ApiError(0, null, null); // network failure: server down or unreachable
    }
    let body = null;
    try {
      body = await response.json();
    } catch (_) {
      body = null;
    }
    if (!response.ok) {
      const detail = body && typeof body.detail === "string" ? body.detail : null;
      const title = body && typeof body.title === "string" ? body.title : null;
      throw new ApiError(response.status, title, detail);
    }
    if (!body || !Array.isArray(body[listField])) throw new ApiError(-1, null, null);
    return body;
  }

  // Results are painted from a search without sentence highlights (no model call beyond the
  // query's); the same search is then asked again with them, and the marks are added in place.
  function search(request, { sentences = false } = {}) {
    const body = {
      query: request.query,
      k: PAGE_SIZE + 1,
      mode: request.mode,
      sort: request.sort,
      collapse: true,
      offset: request.offset,
      semantic_highlights: sentences,
    };
    // Counts of the articles this search draws from, beside the results (not needed again for the marks).
    if (!sentences) body.facets = PAGE_FACETS;
    if (request.filters) body.filters = request.filters;
    return api("/v1/search", {
      method: "POST",
      headers: { Accept: "application/json", "Content-Type": "application/json" },
      body: JSON.stringify(body),
    });
  }

  // The facets the page can apply with its own controls: a source, a language it offers, a month.
  const PAGE_FACETS = ["source", "lang", "month"];
  const PAGE_LANGS = new Set(["uk", "en"]);

  function similar(docId) {
    return api(`/v1/similar/${encodeURIComponent(docId)}?k=${SIMILAR_K}`, { method: "GET" });
  }

  // ---- Running a search --------------------------------------------------------------

  async function run(request, { focusResults = false, pushHistory = true } = {}) {
    const started = performance.now();
    const seq = ++state.seq;
    els.results.removeAttribute("data-render-ms");
    els.results.removeAttribute("data-took-ms");
    els.results.removeAttribute("data-sentences");
    hideError();

    if (!request.query.trim()) {
      state.request = null;
      state.response = null;
      els.results.replaceChildren();
      els.facets.hidden = true;
      els.feed.hidden = true;
      els.alertBox.hidden = true;
      els.results.dataset.state = "idle";
      els.pager.hidden = true;
      setStatus(t().enterQuery);
      els.q.focus();
      return;
    }

    state.request = request;
    if (pushHistory) saveToUrl(request);
    els.results.dataset.state = "loading";
    els.results.setAttribute("aria-busy", "true");
    setStatus(t().loading);

    let response;
    try {
      response = await search(request);
    } catch (err) {
      if (seq !== state.seq) return;
      els.results.removeAttribute("aria-busy");
      state.response = null;
      els.results.replaceChildren();
      els.facets.hidden = true;
      els.feed.hidden = true;
      els.alertBox.hidden = true;
      els.results.dataset.state = "error";
      els.pager.hidden = true;
      setStatus("", { visible: false });
      showError(els.error, t().errorTitle, err);
      return;
    }
    if (seq !== state.seq) return;

    state.hasNext = response.hits.length > PAGE_SIZE;
    state.response = { ...response, hits: response.hits.slice(0, PAGE_SIZE) };
    state.similar.clear();
    state.openSimilar.clear();
    state.documents.clear();
    state.openPages.clear();
    renderResults();
    els.results.removeAttribute("aria-busy");
    els.results.dataset.tookMs = String(response.took_ms);
    if (focusResults) {
      els.resultsHeading.focus({ preventScroll: true });
      els.resultsHeading.scrollIntoView({ block: "start" });
    }
    // Two frames: the first runs before the results are painted, the second after.
    requestAnimationFrame(() =>
      requestAnimationFrame(() => {
        if (seq !== state.seq) return;
        els.results.dataset.renderMs = (performance.now() - started).toFixed(1);
      }),
    );
    addSentenceHighlights(request, seq);
  }

  // Hits found by meaning alone have no marks yet: ask for the sentence closest to the query.
  async function addSentenceHighlights(request, seq) {
    const unmarked = state.response.hits.some((hit) => !(hit.highlights && hit.highlights.length));
    if (request.mode === "lexical" || !unmarked) {
      els.results.dataset.sentences = "done";
      return;
    }
    els.results.dataset.sentences = "pending";
    let response;
    try {
      response = await search(request, { sentences: true });
    } catch (_) {
      if (seq === state.seq) els.results.dataset.sentences = "failed"; // the results stay as they are
      return;
    }
    if (seq !== state.seq) return;
    const items = els.results.querySelectorAll(":scope > li.result");
    state.response.hits.forEach((hit, n) => {
      const fresh = response.hits[n];
      if (!fresh || fresh.passage_id !== hit.passage_id || fresh.highlight_kind !== "sentence") return;
      if (hit.highlights && hit.highlights.length) return;
      state.response.hits[n] = { ...hit, highlights: fresh.highlights, highlight_kind: fresh.highlight_kind };
      const old = items[n] && items[n].querySelector("p.passage");
      if (old) old.replaceWith(passageNode(state.response.hits[n]));
    });
    els.results.dataset.sentences = "done";
  }

  function rerender() {
    if (state.response) renderResults();
    else if (els.results.dataset.state === "idle" && els.status.textContent) setStatus(t().enterQuery);
  }

  // ---- Rendering ---------------------------------------------------------------------

  function el(tag, className, text) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined && text !== null) node.textContent = text;
    return node;
  }

  function safeUrl(url) {
    if (typeof url !== "string" || !url) return null;
    try {
      const parsed = new URL(url, window.location.href);
      return parsed.protocol === "http:" || parsed.protocol === "https:" ? parsed.href : null;
    } catch (_) {
      return null;
    }
  }

  // A document's page on the web: its address with #page=N, the PDF open parameter browsers' viewers honour.
  function pageUrl(hit, page) {
    const href = safeUrl(hit.url);
    if (!href || !Number.isInteger(page)) return href;
    const url = new URL(href);
    url.hash = `page=${page}`;
    return url.href;
  }

  function formatDate(iso) {
    const date = new Date(iso);
    if (Number.isNaN(date.getTime())) return null;
    return new Intl.DateTimeFormat(state.ui === "uk" ? "uk-UA" : "en-GB", {
      day: "numeric",
      month: "long",
      year: "numeric",
    }).format(date);
  }

  function titleNode(hit, tag, className) {
    const heading = el(tag, className);
    const title = hit.title || t().noTitle;
    const href = pageUrl(hit, hit.page);
    if (href) {
      const link = el("a", null, title);
      link.href = href;
      link.target = "_blank";
      link.rel = "noopener noreferrer";
      link.append(el("span", "visually-hidden", ` ${t().opensInNewTab}`));
      heading.append(link);
    } else {
      heading.append(el("span", null, title));
    }
    return heading;
  }

  function metaNode(hit) {
    const meta = el("p", "meta");
    const parts = [];
    if (hit.published_at) {
      const text = formatDate(hit.published_at);
      if (text) {
        const time = el("time", null, text);
        time.dateTime = hit.published_at;
        parts.push(time);
      }
    }
    if (hit.source) parts.push(el("span", "source", hit.source));
    if (Number.isInteger(hit.page)) parts.push(pageLabel(hit, hit.page));
    if (hit.lang) {
      const badge = el("span", "lang-badge", t().lang[hit.lang] || hit.lang);
      badge.lang = state.ui;
      parts.push(badge);
    }
    parts.forEach((part, i) => {
      // Each separator sticks to the item before it, so a wrapped line never starts with "·".
      const item = el("span", "meta-item");
      item.append(part);
      if (i < parts.length - 1) item.append(el("span", "sep", " ·"));
      meta.append(item, " ");
    });
    return meta;
  }

  // "p. 12": a link that opens the document at that page when it has an address, else the words alone.
  function pageLabel(hit, page) {
    const href = safeUrl(hit.url) ? pageUrl(hit, page) : null;
    if (!href) return el("span", "page-no", t().pageOf(page));
    const link = el("a", "page-no page-link", t().pageOf(page));
    link.href = href;
    link.target = "_blank";
    link.rel = "noopener noreferrer";
    link.dataset.page = String(page);
    link.setAttribute("aria-label", `${t().openPage(page)} ${t().opensInNewTab}`);
    return link;
  }

  // A collapsed document's other pages with matches: each opens the document there (with an address)
  // and shows that page's text here on demand (from GET /v1/documents/{id}, read once per search).
  function otherPagesNode(hit) {
    const m = t();
    const box = el("div", "doc-pages");
    const label = el("span", "doc-pages-label", m.otherPages);
    label.id = `doc-pages-${hit.rank}`;
    const list = el("ul", "doc-page-list");
    list.setAttribute("aria-labelledby", label.id);
    const panels = el("div", "page-panels");
    for (const page of hit.other_pages) {
      const item = el("li", "doc-page");
      item.dataset.page = String(page);
      const key = `${hit.doc_id}\u0000${page}`;
      const open = state.openPages.has(key);
      const toggle = el("button", "page-toggle", m.pageOf(page));
      toggle.type = "button";
      toggle.setAttribute("aria-label", m.showPage(page));
      toggle.setAttribute("aria-expanded", String(open));
      const panel = el("div", "page-text");
      panel.id = `page-${hit.rank}-${page}`;
      panel.dataset.page = String(page);
      panel.hidden = !open;
      toggle.setAttribute("aria-controls", panel.id);
      toggle.addEventListener("click", () => togglePage(hit, page, key, toggle, panel));
      if (open) fillPage(hit, page, panel);
      item.append(toggle);
      if (safeUrl(hit.url)) {
        const link = pageLabel(hit, page);
        link.className = "page-open";
        link.textContent = "↗";
        item.append(" ", link);
      }
      list.append(item);
      panels.append(panel);
    }
    box.append(label, " ", list, panels);
    return box;
  }

  function togglePage(hit, page, key, toggle, panel) {
    const open = !state.openPages.has(key);
    if (open) state.openPages.add(key);
    else state.openPages.delete(key);
    toggle.setAttribute("aria-expanded", String(open));
    panel.hidden = !open;
    if (open) fillPage(hit, page, panel);
  }

  async function fillPage(hit, page, panel) {
    const m = t();
    panel.dataset.state = "loading";
    panel.setAttribute("aria-busy", "true");
    panel.replaceChildren(el("p", "page-status", m.pageLoading));
    if (!state.documents.has(hit.doc_id)) {
      state.documents.set(hit.doc_id, documentOf(hit.doc_id));
    }
    const loading = state.documents.get(hit.doc_id);
    let doc;
    try {
      doc = await loading;
    } catch (err) {
      if (state.documents.get(hit.doc_id) === loading) state.documents.delete(hit.doc_id); // a retry may work
      panel.removeAttribute("aria-busy");
      panel.dataset.state = "error";
      const box = el("div", "error");
      box.setAttribute("role", "alert");
      panel.replaceChildren(box);
      showError(box, m.pageErrorTitle, err);
      return;
    }
    panel.removeAttribute("aria-busy");
    panel.dataset.state = "done";
    const heading = el("p", "page-heading", m.pageOf(page));
    const texts = doc.passages.filter((p) => p.page === page).map((p) => el("p", "page-passage", p.text));
    panel.replaceChildren(heading, ...texts);
  }

  function documentOf(docId) {
    return api(`/v1/documents/${encodeURIComponent(docId)}`, { method: "GET" }, "passages");
  }

  // The passage with its highlight spans as <mark>. Offsets count Unicode code points
  // (Python string indices), so slice by code points, not UTF-16 units.
  function passageNode(hit) {
    const p = el("p", "passage");
    const chars = Array.from(hit.text || "");
    const spans = (Array.isArray(hit.highlights) ? hit.highlights : [])
      .filter((s) => Number.isInteger(s.start) && Number.isInteger(s.end) && s.start < s.end)
      .sort((a, b) => a.start - b.start);
    const kind = hit.highlight_kind === "sentence" ? "sentence" : "terms";
    let at = 0;
    for (const span of spans) {
      const start = Math.max(span.start, at);
      const end = Math.min(span.end, chars.length);
      if (start >= end) continue;
      if (start > at) p.append(document.createTextNode(chars.slice(at, start).join("")));
      const mark = el("mark", `hl hl-${kind}`, chars.slice(start, end).join(""));
      mark.title = kind === "sentence" ? t().matchSentence : t().matchTerms;
      p.append(mark);
      at = end;
    }
    if (at < chars.length) p.append(document.createTextNode(chars.slice(at).join("")));
    return p;
  }

  function resultNode(hit) {
    const li = el("li", "result");
    li.dataset.docId = hit.doc_id;
    const article = el("article");
    const title = titleNode(hit, "h3", "result-title");
    title.id = `title-${hit.rank}`;
    article.append(title, metaNode(hit), passageNode(hit));
    if (Array.isArray(hit.other_pages) && hit.other_pages.length) article.append(otherPagesNode(hit));
    else if (hit.other_matches > 0) article.append(el("p", "more-passages", t().morePassages(hit.other_matches)));

    const panelId = `similar-${hit.rank}`;
    const open = state.openSimilar.has(hit.doc_id);
    const button = el("button", "similar-button secondary", open ? t().similarHide : t().similar);
    button.type = "button";
    button.setAttribute("aria-expanded", String(open));
    button.setAttribute("aria-controls", panelId);
    button.setAttribute("aria-describedby", title.id); // which story: every such button reads the same
    const panel = el("div", "similar-panel");
    panel.id = panelId;
    panel.hidden = !open;
    if (open) renderSimilar(panel, hit);
    button.addEventListener("click", () => toggleSimilar(hit, button, panel));
    const actions = el("div", "actions");
    actions.append(button);
    article.append(actions, panel);
    li.append(article);
    return li;
  }

  function renderResults() {
    const m = t();
    const response = state.response;
    const offset = response.offset || 0;
    const hits = response.hits;
    const page = Math.floor(offset / PAGE_SIZE) + 1;

    if (!hits.length) {
      els.results.dataset.state = "empty";
      const li = el("li", "empty");
      li.append(el("p", "empty-title", m.emptyTitle), el("p", "empty-hint", offset ? m.emptyPage : m.emptyHint));
      els.results.replaceChildren(li);
      setStatus(`${m.emptyTitle}.`, { visible: false });
    } else {
      els.results.dataset.state = "results";
      els.results.start = offset + 1;
      els.results.replaceChildren(...hits.map(resultNode));
      setStatus(m.found(offset + 1, offset + hits.length, Math.round(response.took_ms)));
    }

    renderFacets(response.facets || {});
    els.feed.href = feedUrl(state.request);
    els.feed.hidden = false;
    els.alertBox.hidden = false;
    els.pager.hidden = page === 1 && !state.hasNext;
    els.prev.disabled = page === 1;
    els.next.disabled = !state.hasNext;
    els.pageLabel.textContent = m.page(page);
  }

  // A facet bucket is a button that applies its filter with the page's own controls and searches again.
  function renderFacets(facets) {
    const m = t();
    const groups = [];
    for (const name of PAGE_FACETS) {
      const buckets = (Array.isArray(facets[name]) ? facets[name] : []).filter(
        (b) => name !== "lang" || PAGE_LANGS.has(b.value),
      );
      if (buckets.length < 2) continue; // one value narrows nothing
      const group = el("div", "facet-group");
      group.dataset.facet = name;
      group.append(el("span", "facet-name", m.facetNames[name]));
      for (const bucket of buckets.slice(0, 8)) {
        const button = el("button", "facet", `${bucket.value} (${bucket.count})`);
        button.type = "button";
        button.setAttribute("aria-label", m.facetApply(m.facetNames[name], bucket.value, bucket.count));
        button.addEventListener("click", () => applyFacet(name, bucket));
        group.append(button);
      }
      groups.push(group);
    }
    els.facets.replaceChildren(...groups);
    els.facets.hidden = groups.length === 0;
  }

  function applyFacet(name, bucket) {
    const f = bucket.filters || {};
    if (name === "source") els.source.value = bucket.value;
    if (name === "lang") els.lang.value = bucket.value;
    if (name === "month") {
      els.from.value = typeof f.published_from === "string" ? f.published_from : "";
      els.to.value = typeof f.published_to === "string" ? f.published_to : "";
    }
    run(buildRequest(0));
  }

  async function toggleSimilar(hit, button, panel) {
    const m = t();
    const open = !state.openSimilar.has(hit.doc_id);
    if (!open) {
      state.openSimilar.delete(hit.doc_id);
      panel.hidden = true;
      button.textContent = m.similar;
      button.setAttribute("aria-expanded", "false");
      return;
    }
    state.openSimilar.add(hit.doc_id);
    panel.hidden = false;
    button.textContent = m.similarHide;
    button.setAttribute("aria-expanded", "true");
    if (!state.similar.has(hit.doc_id) || state.similar.get(hit.doc_id).status === "error") {
      const entry = { status: "loading" };
      state.similar.set(hit.doc_id, entry);
      renderSimilar(panel, hit);
      try {
        entry.data = await similar(hit.doc_id);
        entry.status = "done";
      } catch (err) {
        entry.error = err;
        entry.status = "error";
      }
      if (state.similar.get(hit.doc_id) !== entry) return; // a new search replaced the results
    }
    renderSimilar(panel, hit);
  }

  function renderSimilar(panel, hit) {
    const m = t();
    const entry = state.similar.get(hit.doc_id);
    panel.replaceChildren();
    if (!entry) return;
    panel.dataset.state = entry.status;
    if (entry.status === "loading") {
      panel.setAttribute("aria-busy", "true");
      panel.append(el("p", "similar-status", m.similarLoading));
      return;
    }
    panel.removeAttribute("aria-busy");
    if (entry.status === "error") {
      const box = el("div", "error");
      box.setAttribute("role", "alert");
      panel.append(box);
      showError(box, m.similarErrorTitle, entry.error);
      return;
    }
    panel.append(el("h4", "similar-heading", m.similarHeading(hit.title || m.noTitle)));
    if (!entry.data.hits.length) {
      panel.append(el("p", "similar-status", m.similarEmpty));
      return;
    }
    const list = el("ol", "similar-list");
    for (const other of entry.data.hits) {
      const li = el("li", "similar-item");
      li.dataset.docId = other.doc_id;
      li.append(titleNode(other, "p", "similar-title"), metaNode(other));
      list.append(li);
    }
    panel.append(list);
  }

  // ---- Status and errors -------------------------------------------------------------

  // The live region always speaks; it hides itself where the page already shows the same words.
  function setStatus(text, { visible = true } = {}) {
    els.status.textContent = text;
    els.status.classList.toggle("visually-hidden", !visible);
  }

  function hideError() {
    els.error.hidden = true;
    els.error.replaceChildren();
  }

  function showError(box, heading, err) {
    const m = t();
    let summary;
    let detail = null;
    if (err instanceof ApiError && err.status === 0) {
      summary = m.errorNetwork;
    } else if (err instanceof ApiError && err.status === -1) {
      summary = m.errorBadResponse;
    } else if (err instanceof ApiError) {
      summary = m.errorStatus[err.status] || err.title || m.errorHttp(err.status);
      detail = err.detail;
    } else {
      summary = m.errorBadResponse;
    }
    box.replaceChildren(el("p", "error-title", heading), el("p", "error-summary", summary));
    if (detail) {
      const p = el("p", "error-detail", detail);
      p.lang = "en"; // the API's details are in English
      box.append(p);
    }
    box.hidden = false;
  }

  // ---- Saving the search as an alert --------------------------------------------------

  // The key is sent with this one request and kept nowhere (not in storage, not in the address).
  async function saveAlert(request) {
    const m = t();
    const body = { query: request.query, mode: request.mode };
    if (request.filters) body.filters = request.filters;
    els.alertResult.replaceChildren(document.createTextNode(m.alertSaving));
    let response;
    let answer = null;
    try {
      response = await fetch("/v1/alerts", {
        method: "POST",
        headers: {
          Accept: "application/json",
          "Content-Type": "application/json",
          Authorization: `Bearer ${els.alertKey.value.trim()}`,
        },
        body: JSON.stringify(body),
      });
      answer = await response.json();
    } catch (_) {
      response = null;
    }
    if (!response || !response.ok || !answer || typeof answer.id !== "string") {
      const detail = answer && typeof answer.detail === "string" ? answer.detail : m.errorNetwork;
      els.alertResult.replaceChildren(document.createTextNode(m.alertFailed(detail)));
      els.alertResult.dataset.state = "error";
      return;
    }
    const link = el("a", "alert-feed", m.alertFeed);
    link.id = "alert-feed";
    link.href = `/v1/alerts/${encodeURIComponent(answer.id)}/feed.atom`;
    els.alertResult.replaceChildren(document.createTextNode(`${m.alertSaved} `), link);
    els.alertResult.dataset.state = "saved";
    els.alertResult.dataset.alertId = answer.id;
  }

  // ---- The address bar: a search is a link -------------------------------------------

  // The same search as an Atom feed a reader can subscribe to (newest first, as feeds are read).
  function feedUrl(request) {
    return `/v1/search.atom?${linkParams(request)}`;
  }

  // The query, mode and filters of a search as link parameters (the page's address, its feed).
  function linkParams(request) {
    const params = new URLSearchParams();
    params.set("q", request.query);
    if (request.mode !== "hybrid") params.set("mode", request.mode);
    const f = request.filters || {};
    if (f.lang) params.set("lang", f.lang[0]);
    if (f.source) params.set("source", f.source[0]);
    if (f.published_from) params.set("from", f.published_from);
    if (f.published_to) params.set("to", f.published_to);
    return params;
  }

  function saveToUrl(request) {
    const params = linkParams(request);
    if (request.sort !== "relevance") params.set("sort", request.sort);
    if (request.offset) params.set("offset", String(request.offset));
    const url = `${window.location.pathname}?${params}`;
    if (url !== `${window.location.pathname}${window.location.search}`) {
      window.history.pushState(null, "", url);
    }
  }

  function loadFromUrl() {
    const params = new URLSearchParams(window.location.search);
    els.q.value = params.get("q") || "";
    const mode = params.get("mode");
    els.mode.value = mode === "dense" || mode === "lexical" ? mode : "hybrid";
    const sort = params.get("sort");
    els.sort.value = sort === "newest" || sort === "oldest" ? sort : "relevance";
    const lang = params.get("lang");
    els.lang.value = lang === "uk" || lang === "en" ? lang : "";
    els.source.value = params.get("source") || "";
    els.from.value = params.get("from") || "";
    els.to.value = params.get("to") || "";
    const offset = Number.parseInt(params.get("offset") || "0", 10);
    return Number.isFinite(offset) && offset > 0 ? offset - (offset % PAGE_SIZE) : 0;
  }

  // ---- Wiring ------------------------------------------------------------------------

  els.form.addEventListener("submit", (event) => {
    event.preventDefault();
    run(buildRequest(0));
  });

  for (const select of [els.mode, els.sort, els.lang]) {
    select.addEventListener("change", () => {
      if (els.q.value.trim()) run(buildRequest(0));
    });
  }

  els.alertForm.addEventListener("submit", (event) => {
    event.preventDefault();
    if (state.request) saveAlert(state.request);
  });

  els.reset.addEventListener("click", () => {
    els.lang.value = "";
    els.source.value = "";
    els.from.value = "";
    els.to.value = "";
    if (els.q.value.trim()) run(buildRequest(0));
  });

  els.prev.addEventListener("click", () => {
    if (!state.request) return;
    run({ ...state.request, offset: Math.max(0, state.request.offset - PAGE_SIZE) }, { focusResults: true });
  });

  els.next.addEventListener("click", () => {
    if (!state.request) return;
    run({ ...state.request, offset: state.request.offset + PAGE_SIZE }, { focusResults: true });
  });

  els.uiLang.addEventListener("click", () => applyLang(state.ui === "uk" ? "en" : "uk", true));

  document.addEventListener("keydown", (event) => {
    if (event.key !== "/" || event.ctrlKey || event.metaKey || event.altKey) return;
    const target = event.target;
    const typing =
      target instanceof HTMLInputElement ||
      target instanceof HTMLTextAreaElement ||
      target instanceof HTMLSelectElement ||
      (target instanceof HTMLElement && target.isContentEditable);
    if (typing) return;
    event.preventDefault();
    els.q.focus();
    els.q.select();
  });

  window.addEventListener("popstate", () => {
    const offset = loadFromUrl();
    run(buildRequest(offset), { pushHistory: false });
  });

  applyLang(readStoredLang() || "uk", false);
  const initialOffset = loadFromUrl();
  if (els.q.value.trim()) run(buildRequest(initialOffset), { pushHistory: false });
})();
