/* cxr-xai-bench HTML report: leaderboards, report sections and the case browser, from window.CXR_DATA
   (data.js). Plain JS, no libraries, no network: it opens from disk. */
(function () {
  "use strict";
  var D = window.CXR_DATA;
  if (!D) { document.getElementById("boards").textContent = "data.js is missing beside index.html."; return; }
  var $ = function (id) { return document.getElementById(id); };
  var esc = function (s) {
    return String(s).replace(/[&<>"']/g, function (c) {
      return { "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[c];
    });
  };
  var EXPL = {}, METRIC = {};
  D.explainers.forEach(function (e) { EXPL[e.name] = e; });
  D.metrics.forEach(function (m) { METRIC[m.name] = m; });
  var name = function (e) { return EXPL[e] ? EXPL[e].label : e; };
  var tag = function (e) {
    return EXPL[e] && EXPL[e].baseline ? '<span class="tag base">baseline</span>' : '<span class="tag method">method</span>';
  };
  var swatch = function (e) {
    return '<span class="swatch" style="background:' + esc(EXPL[e] ? EXPL[e].color : "#999") + '"></span>';
  };

  function fmt(metric, v) {
    if (v === null || v === undefined) { return "–"; }
    var m = METRIC[metric] || { dec: 3 };
    if (m.time) {
      var a = Math.abs(v);
      if (a >= 1) { return v.toFixed(2) + " s"; }
      if (a >= 1e-3) { return (v * 1e3).toFixed(1) + " ms"; }
      return (v * 1e6).toFixed(0) + " µs";
    }
    return v.toFixed(m.dec);
  }

  /* ---- leaderboards ---- */
  function boardHtml(t, k) {
    var h = '<div class="scroll"><table class="board" data-board="' + k + '"><thead><tr><th>Explainer</th>';
    t.columns.forEach(function (c, j) {
      h += '<th class="sortable' + (c.judged ? "" : " unjudged") + '" data-col="' + j + '" title="' + esc(c.name) +
        (c.judged ? "" : ": not judged (no headroom)") + '">' + esc(c.label) + ' <span class="dir">' +
        (c.higher ? "↑" : "↓") + "</span>" + (c.judged ? "" : " (not judged)") + "</th>";
    });
    h += "</tr></thead><tbody>";
    var rows = function (base) {
      return t.rows.filter(function (r) { return r.baseline === base; });
    };
    var body = function (list) {
      return list.map(function (r) {
        var s = '<tr class="' + (r.baseline ? "baseline" : "method") + '" data-explainer="' + esc(r.explainer) + '"><td>' +
          swatch(r.explainer) + esc(r.label) + "</td>";
        r.cells.forEach(function (c) {
          s += '<td class="num' + (c.best ? " best" : "") + '" data-v="' + (c.v === null ? "" : c.v) + '">' + esc(c.t) + "</td>";
        });
        return s + "</tr>";
      }).join("");
    };
    h += '</tbody><tbody class="methods">' + body(rows(false)) + "</tbody>";
    var b = rows(true);
    if (b.length) {
      h += '<tbody class="baselines"><tr class="block"><td colspan="' + (t.columns.length + 1) +
        '">Baselines (reference)</td></tr>' + body(b) + "</tbody>";
    }
    return h + "</table></div>";
  }

  function sortBoard(table, col, higher) {
    var th = table.querySelectorAll("th")[col + 1];
    var bestFirst = th.getAttribute("aria-sort") !== (higher ? "descending" : "ascending");
    table.querySelectorAll("th").forEach(function (x) { x.removeAttribute("aria-sort"); });
    var desc = higher ? bestFirst : !bestFirst;
    th.setAttribute("aria-sort", desc ? "descending" : "ascending");
    table.querySelectorAll("tbody").forEach(function (tb) {
      var rows = Array.prototype.slice.call(tb.querySelectorAll("tr:not(.block)"));
      rows.sort(function (a, b) {
        var x = a.children[col + 1].getAttribute("data-v"), y = b.children[col + 1].getAttribute("data-v");
        if (x === "" || y === "") { return (x === "") - (y === ""); }
        return desc ? y - x : x - y;
      });
      rows.forEach(function (r) { tb.appendChild(r); });
    });
  }

  function renderBoards() {
    var h = "", last = null, multi = {};
    D.leaderboards.forEach(function (t) { multi[t.dataset] = 1; });
    D.leaderboards.forEach(function (t, k) {
      var head = t.label + (Object.keys(multi).length > 1 ? " on " + t.dataset : "");
      if (head !== last) { h += "<h3>" + esc(head) + "</h3>"; last = head; }
      h += "<h4>" + esc(t.category_label) + "</h4>" + boardHtml(t, k);
    });
    $("boards").innerHTML = h || "<p>No scores.</p>";
    document.querySelectorAll("table.board").forEach(function (table) {
      var t = D.leaderboards[+table.getAttribute("data-board")];
      table.querySelectorAll("th.sortable").forEach(function (th) {
        th.addEventListener("click", function () {
          var j = +th.getAttribute("data-col");
          sortBoard(table, j, t.columns[j].higher);
        });
      });
    });
  }

  function renderSections() {
    /* report.md's own sections, each folded but the first (they are long); their tables sort too */
    $("sections").innerHTML = D.sections.map(function (s, k) {
      return "<details" + (k === 0 ? " open" : "") + '><summary><h2>' + esc(s.title) + "</h2></summary>" + s.html +
        "</details>";
    }).join("");
    document.querySelectorAll("table.md").forEach(function (table) {
      table.querySelectorAll("th").forEach(function (th, j) {
        th.classList.add("sortable");
        th.addEventListener("click", function () { sortText(table, j, th); });
      });
    });
  }

  function sortText(table, j, th) {
    /* a report.md table by one column: numbers by value (a leading number of the cell), else as text */
    var up = th.getAttribute("aria-sort") !== "ascending";
    table.querySelectorAll("th").forEach(function (x) { x.removeAttribute("aria-sort"); });
    th.setAttribute("aria-sort", up ? "ascending" : "descending");
    var key = function (tr) {
      var t = tr.children[j] ? tr.children[j].textContent.trim() : "";
      var n = parseFloat(t.replace("−", "-"));
      return isNaN(n) ? t : n;
    };
    var tb = table.querySelector("tbody"), rows = Array.prototype.slice.call(tb.children);
    rows.sort(function (a, b) {
      var x = key(a), y = key(b);
      var c = typeof x === typeof y ? (x < y ? -1 : x > y ? 1 : 0) : (typeof x === "number" ? -1 : 1);
      return up ? c : -c;
    });
    rows.forEach(function (r) { tb.appendChild(r); });
  }

  /* ---- case browser ---- */
  var S = { model: null, explainer: null, view: "one", cls: "all", lesion: "all", correct: "all",
    sort: "", order: "best", limit: 0 };
  var models = Object.keys(D.models).sort();

  function options(sel, list, value) {
    sel.innerHTML = list.map(function (o) {
      return '<option value="' + esc(o[0]) + '"' + (o[0] === value ? " selected" : "") + ">" + esc(o[1]) + "</option>";
    }).join("");
  }

  function setupControls() {
    S.model = models[0] || null;
    options($("model"), models.map(function (m) { return [m, D.models[m].label]; }), S.model);
    modelChanged();
    ["model", "explainer", "view", "cls", "lesion", "correct", "sort", "order", "limit"].forEach(function (id) {
      $(id).addEventListener("change", function () {
        S[id] = id === "limit" ? +$(id).value : $(id).value;
        if (id === "model") { modelChanged(); }
        renderCards();
      });
    });
    $("opacity").addEventListener("input", function () {
      document.documentElement.style.setProperty("--overlay-opacity", $("opacity").value / 100);
    });
  }

  function modelChanged() {
    var M = D.models[S.model];
    if (!M) { return; }
    if (M.explainers.indexOf(S.explainer) < 0) { S.explainer = M.explainers[0]; }
    options($("explainer"), M.explainers.map(function (e) {
      return [e, name(e) + (EXPL[e] && EXPL[e].baseline ? " (baseline)" : "")];
    }), S.explainer);
    var ms = D.metrics.filter(function (m) { return hasMetric(M, m.name); });
    if (!ms.some(function (m) { return m.name === S.sort; })) { S.sort = ""; }
    options($("sort"), [["", "test order"]].concat(ms.map(function (m) {
      return [m.name, m.label + " (" + (m.higher ? "higher" : "lower") + " is better)"];
    })), S.sort);
  }

  function hasMetric(M, metric) {
    return M.explainers.some(function (e) { return M.scores[e] && M.scores[e][metric]; });
  }

  function value(M, e, metric, k) {
    var s = M.scores[e] && M.scores[e][metric];
    return s ? s[k] : null;
  }

  function wrong(M, k) {
    var c = D.cases[k], p = M.prob[k];
    return c.label === null || p === null ? null : (p > 0.5 ? 1 : 0) !== c.label;
  }

  function visible() {
    var M = D.models[S.model];
    var ks = D.cases.map(function (c, k) { return k; }).filter(function (k) {
      var c = D.cases[k];
      if (S.cls !== "all" && String(c.label) !== S.cls) { return false; }
      if (S.lesion === "yes" && c.lesion !== true) { return false; }
      if (S.lesion === "no" && c.lesion !== false) { return false; }
      if (S.lesion === "unknown" && c.lesion !== null) { return false; }
      if (S.correct !== "all") {
        var w = wrong(M, k);
        if (w === null || w !== (S.correct === "wrong")) { return false; }
      }
      return true;
    });
    if (S.sort) {
      var higher = METRIC[S.sort].higher, best = S.order === "best";
      var scored = ks.filter(function (k) { return value(M, S.explainer, S.sort, k) !== null; });
      var unscored = ks.filter(function (k) { return value(M, S.explainer, S.sort, k) === null; });
      scored.sort(function (a, b) {
        var d = value(M, S.explainer, S.sort, a) - value(M, S.explainer, S.sort, b);
        return (higher === best ? -d : d) || a - b;
      });
      ks = scored.concat(unscored);  /* images the metric left NaN for this explainer come last */
    }
    return S.limit ? ks.slice(0, S.limit) : ks;
  }

  function stack(k, e, small) {
    var c = D.cases[k], M = D.models[S.model];
    var src = e && M.maps[e] ? M.maps[e][k] : null;
    var h = '<div class="stack' + (small ? " small" : "") + '">';
    h += c.xray ? '<img class="xray" loading="lazy" alt="X-ray ' + esc(c.id) + '" src="' + esc(c.xray) + '">'
      : '<div class="none">no thumbnail stored</div>';
    if (e) {
      h += src ? '<img class="overlay" loading="lazy" alt="' + esc(name(e)) + ' map" src="' + esc(src) + '">'
        : '<div class="none">' + esc(name(e)) + ": no map (not applicable)</div>";
    }
    if (c.mask) { h += '<img class="mask" loading="lazy" alt="lesion contour" src="' + esc(c.mask) + '">'; }
    return h + "</div>";
  }

  function card(k) {
    var c = D.cases[k], M = D.models[S.model], w = wrong(M, k), p = M.prob[k];
    var h = '<div class="card' + (S.view === "all" ? " all" : "") + '" data-id="' + esc(c.id) + '"><h3>' + esc(c.id) + "</h3>";
    h += '<div class="meta">' + (c.label === 1 ? '<span class="pill pneu">pneumonia</span>' : c.label === 0 ?
      '<span class="pill norm">normal</span>' : "") +
      '<span class="pill">' + (c.lesion === true ? "lesion drawn" + (c.share !== null ? " (" + Math.round(c.share * 100) +
        "% of lung)" : "") : c.lesion === false ? "no lesion" : "lesion not annotated") + "</span>" +
      (p !== null ? '<span class="pill' + (w ? " wrong" : "") + '">P(pneumonia) ' + p.toFixed(2) + (w ? ", misclassified" : "") +
        "</span>" : "") + "</div>";
    if (S.view === "all") {
      h += '<div class="row"><div class="tile">' + stack(k, null, true) + '<div class="caption">X-ray</div></div>';
      M.explainers.forEach(function (e) {
        var v = S.sort ? value(M, e, S.sort, k) : null;
        h += '<div class="tile">' + stack(k, e, true) + '<div class="caption">' + swatch(e) + esc(name(e)) +
          (S.sort ? "<br>" + esc(fmt(S.sort, v)) : "") + "</div></div>";
      });
      return h + "</div></div>";
    }
    h += '<div class="row"><div class="tile">' + stack(k, null, false) + '<div class="caption">X-ray</div></div>' +
      '<div class="tile">' + stack(k, S.explainer, false) + '<div class="caption">' + swatch(S.explainer) +
      esc(name(S.explainer)) + "</div></div></div>";
    h += '<table class="scores"><tbody>';
    D.metrics.forEach(function (m) {
      var s = M.scores[S.explainer] && M.scores[S.explainer][m.name];
      if (s) {
        h += "<tr" + (m.name === S.sort ? ' style="font-weight:700"' : "") + "><td>" + esc(m.label) + '</td><td class="num">' +
          esc(fmt(m.name, s[k])) + "</td></tr>";
      }
    });
    return h + "</tbody></table></div>";
  }

  function renderCards() {
    if (!S.model) { $("cards").innerHTML = "<p>No scored images.</p>"; return; }
    var ks = visible();
    $("count").textContent = "Showing " + ks.length + " of " + D.cases.length + " scored images (" +
      D.models[S.model].label + ")" + (S.sort ? ", by " + METRIC[S.sort].label + " of " + name(S.explainer) + ", " +
        (S.order === "best" ? "best" : "worst") + " first" : "") + ".";
    $("cards").innerHTML = ks.map(card).join("");
  }

  function renderLegend() {
    $("legend").innerHTML = '<span><span class="contour-key"></span>expert lesion contour</span>' +
      '<span>unsigned map: low<span class="bar" style="background-image:' + esc(D.legend.unsigned) + '"></span>high</span>' +
      '<span>signed map (' + esc(Object.keys(D.signed).filter(function (e) { return D.signed[e]; }).map(name).join(", ") || "none") +
      '): negative<span class="bar" style="background-image:' + esc(D.legend.signed) + '"></span>positive</span>' +
      "<span>each map scaled to its own range; transparent where weak</span>";
  }

  renderBoards();
  renderSections();
  renderLegend();
  setupControls();
  renderCards();
}());
