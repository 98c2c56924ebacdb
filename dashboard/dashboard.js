// dashboard.js: draws panels.json from Prometheus's HTTP API with uPlot, refreshing every few seconds.
//
// Everything is fetched relative to the page: panels.json, events.json (the lab's layout changes)
// and prometheus/api/v1/... (the lab's nginx forwards /dashboard/prometheus/ to Prometheus).
// ?prometheus=http://127.0.0.1:9090/ points the page at another Prometheus instead.
//
// After each refresh every panel carries what it drew as data attributes, for tests and scripts:
//   data-state="ok|empty|error"  data-series=N (series with at least one value)
//   data-points=N (values drawn)  data-servers="app,app2" (server labels with data)
// and <body> carries data-loaded (refreshes done), data-marks (layout changes in range) and
// data-mark-badges (the badge of each, "1,2,3": the servers after the change).
(function () {
  "use strict";

  var params = new URLSearchParams(window.location.search);
  var prometheusBase = params.get("prometheus") || "prometheus/";
  if (prometheusBase.charAt(prometheusBase.length - 1) !== "/") prometheusBase += "/";
  var refreshMs = 1000 * Math.max(1, Number(params.get("refresh") || 5));
  var rangeSelect = document.getElementById("range");
  var liveBox = document.getElementById("live");
  var statusLine = document.getElementById("status");
  if (params.get("range")) rangeSelect.value = params.get("range");

  // Fixed colours: the same server has the same colour in every panel.
  var palette = ["#1f77b4", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#17becf",
    "#bcbd22", "#7f7f7f", "#ff7f0e", "#393b79", "#637939"];
  var fixedColours = { "total": "#111111", "PostgreSQL": "#ff7f0e", "host busy": "#7f7f7f",
    "host capacity": "#c7c7c7" };
  var colourOfKey = {};
  var nextColour = 0;

  var panels = [];       // {spec, section, chartBox, note, chart, seriesKey}
  var marks = [];        // {time (s), text}
  var refreshes = 0;
  var timer = null;
  var busy = false;

  function colourFor(labels, legend) {
    if (fixedColours[legend]) return fixedColours[legend];
    var key = labels.server || labels.state || labels.route || legend;
    if (!colourOfKey[key]) {
      colourOfKey[key] = palette[nextColour % palette.length];
      nextColour++;
    }
    return colourOfKey[key];
  }

  // legendText("{{route}} {{server}}", {route: "/report", server: "app"}) -> "/report app"
  function legendText(template, labels) {
    return template.replace(/\{\{\s*(\w+)\s*\}\}/g, function (_, name) {
      return labels[name] !== undefined ? labels[name] : "";
    }).trim() || JSON.stringify(labels);
  }

  function fetchJson(url) {
    return fetch(url, { cache: "no-store" }).then(function (response) {
      if (!response.ok) throw new Error(url + ": HTTP " + response.status);
      return response.json();
    });
  }

  function queryRange(expr, start, end, step) {
    var url = prometheusBase + "api/v1/query_range?query=" + encodeURIComponent(expr) +
      "&start=" + start + "&end=" + end + "&step=" + step;
    return fetchJson(url).then(function (body) {
      if (body.status !== "success") throw new Error(body.error || "query failed");
      return body.data.result;
    });
  }

  function formatValue(value, unit) {
    if (value === null || value === undefined || !isFinite(value)) return "–";
    var abs = Math.abs(value);
    var text = abs >= 100 ? value.toFixed(0) : abs >= 10 ? value.toFixed(1) : value.toFixed(2);
    return text + " " + unit;
  }

  // The layout changes as dashed orange lines, each with a short badge at the top: the number
  // of servers after the change.  What each one was (time, servers, pool, CPU) is in the one
  // legend above the panels (#marks), so no text piles up inside a chart however many scales
  // there were.  A badge that would overlap the one before it is left out (its line is drawn).
  function marksPlugin() {
    return {
      hooks: {
        draw: [function (u) {
          var ctx = u.ctx;
          var min = u.scales.x.min, max = u.scales.x.max;
          var px = devicePixelRatio;
          ctx.save();
          ctx.font = "bold " + (11 * px) + "px sans-serif";
          var lastRight = -Infinity;
          marks.forEach(function (mark) {
            if (mark.time < min || mark.time > max) return;
            var x = Math.round(u.valToPos(mark.time, "x", true));
            ctx.strokeStyle = "#f08c00";
            ctx.lineWidth = 1.5 * px;
            ctx.setLineDash([5 * px, 4 * px]);
            ctx.beginPath();
            ctx.moveTo(x, u.bbox.top);
            ctx.lineTo(x, u.bbox.top + u.bbox.height);
            ctx.stroke();
            var width = ctx.measureText(mark.badge).width + 8 * px;
            var left = x - width / 2;
            if (left < lastRight + 2 * px) return;
            lastRight = left + width;
            ctx.setLineDash([]);
            ctx.fillStyle = "#f08c00";
            ctx.fillRect(left, u.bbox.top, width, 15 * px);
            ctx.fillStyle = "#ffffff";
            ctx.textAlign = "center";
            ctx.fillText(mark.badge, x, u.bbox.top + 11.5 * px);
          });
          ctx.restore();
        }]
      }
    };
  }

  // The one legend of the marks, above the panels: every change in range, oldest first.
  function showMarks(start, end) {
    var inRange = marks.filter(function (m) { return m.time >= start && m.time <= end; });
    document.body.dataset.marks = String(inRange.length);
    document.body.dataset.markBadges = inRange.map(function (m) { return m.badge; }).join(",");
    var box = document.getElementById("marks");
    if (!box) return;
    box.textContent = "";
    if (!inRange.length) {
      box.textContent = "No layout change in this range.";
      return;
    }
    var title = document.createElement("span");
    title.className = "marks-title";
    title.textContent = "Layout changes (make scale), oldest first; the badge on each orange line is the number of servers:";
    box.appendChild(title);
    inRange.forEach(function (m) {
      var item = document.createElement("span");
      item.className = "mark";
      var badge = document.createElement("b");
      badge.className = "badge";
      badge.textContent = m.badge;
      item.appendChild(badge);
      item.appendChild(document.createTextNode(" " +
        new Date(m.time * 1000).toLocaleTimeString([], { hour12: false }) + " " + m.text));
      box.appendChild(item);
    });
  }

  function chartWidth(panel) {
    return Math.max(300, panel.chartBox.clientWidth || panel.section.clientWidth - 20);
  }

  // On a log scale the grid and labels are the decades only (0.1, 1, 10, 100, 1k...): uPlot's
  // own log ticks also mark 2..9 of each decade, and their labels pile up.
  function decades(u, axisIndex, min, max) {
    var out = [];
    for (var e = Math.floor(Math.log10(min) + 1e-9); e <= Math.ceil(Math.log10(max) - 1e-9); e++) {
      out.push(Math.pow(10, e));
    }
    return out;
  }

  function makeChart(panel, series, data) {
    if (panel.chart) panel.chart.destroy();
    panel.chartBox.innerHTML = "";
    var unit = panel.spec.unit;
    // A log scale (panels.json "scale": "log") keeps 150 and 3,000 requests/s both readable:
    // the same height of plateau for the same ratio.  Decades from the lowest value to the top.
    var y = panel.spec.scale === "log" ? { distr: 3, log: 10, range: function (u, min, max) {
      var low = min > 0 ? Math.pow(10, Math.floor(Math.log10(min))) : 0.1;
      var high = max > 0 ? Math.pow(10, Math.ceil(Math.log10(max * 1.05))) : 10;
      return [low, Math.max(high, low * 10)];
    } } : { range: function (u, min, max) {
      return [0, max > 0 ? max * 1.1 : 1];
    } };
    var options = {
      width: chartWidth(panel),
      height: 240,
      plugins: [marksPlugin()],
      scales: { x: { time: true }, y: y },
      axes: [{ values: function (u, ticks) {
        return ticks.map(function (t) {
          return new Date(t * 1000).toLocaleTimeString([], { hour12: false });
        });
      } }, { size: 60, splits: panel.spec.scale === "log" ? decades : undefined, values: function (u, ticks) {
        return ticks.map(function (v) {
          if (v === null || v === undefined) return "";
          return Math.abs(v) >= 1000 ? (v / 1000) + "k" : String(+v.toPrecision(6));
        });
      } }],
      legend: { live: true },
      series: [{}].concat(series.map(function (s) {
        return { label: s.label, stroke: s.colour, width: s.label === "total" ? 2.5 : 1.5,
          dash: s.dash, spanGaps: false, points: { show: false },
          value: function (u, v) { return formatValue(v, unit); } };
      }))
    };
    panel.chart = new uPlot(options, data, panel.chartBox);
  }

  function draw(panel, results, xs, start, step) {
    // One column per series; Prometheus evaluates at start + k * step, so values index directly.
    var series = [], data = [xs], finiteSeries = 0, points = 0, servers = {};
    results.forEach(function (queryResult) {
      queryResult.result.forEach(function (one) {
        var labels = one.metric || {};
        var column = new Array(xs.length).fill(null);
        var count = 0;
        one.values.forEach(function (pair) {
          var index = Math.round((pair[0] - start) / step);
          var value = parseFloat(pair[1]);
          if (panel.spec.scale === "log" && value <= 0) value = NaN; // no 0 on a log scale
          if (index >= 0 && index < xs.length && isFinite(value)) {
            column[index] = value;
            count++;
          }
        });
        var label = legendText(queryResult.legend, labels);
        series.push({ label: label, colour: colourFor(labels, label),
          dash: labels.route === "/report" || label.indexOf("idle") === 0 ? [5, 3] : undefined });
        data.push(column);
        if (count > 0) {
          finiteSeries++;
          points += count;
          if (labels.server) servers[labels.server] = true;
        }
      });
    });
    // The legend shows the latest values until the cursor points elsewhere.
    var latest = -1;
    for (var i = xs.length - 1; i >= 0 && latest < 0; i--) {
      for (var j = 1; j < data.length; j++) if (data[j][i] !== null) { latest = i; break; }
    }
    var key = series.map(function (s) { return s.label; }).join("\n");
    if (panel.chart && key === panel.seriesKey && series.length) {
      panel.chart.setData(data);
    } else if (series.length) {
      makeChart(panel, series, data);
      panel.seriesKey = key;
    } else {
      if (panel.chart) panel.chart.destroy();
      panel.chart = null;
      panel.seriesKey = "";
      panel.chartBox.innerHTML = "";
    }
    if (panel.chart && latest >= 0) panel.chart.setLegend({ idx: latest });
    var serverList = Object.keys(servers).sort();
    panel.section.dataset.series = String(finiteSeries);
    panel.section.dataset.points = String(points);
    panel.section.dataset.servers = serverList.join(",");
    panel.section.dataset.state = finiteSeries > 0 ? "ok" : "empty";
    panel.note.textContent = finiteSeries > 0 ? "" :
      "No data in this range yet (Prometheus scrapes every 5 s; rates need two scrapes).";
  }

  function loadMarks(start, end) {
    return fetchJson("events.json").then(function (body) {
      // A restart of the same layout (make down, make up) is not a change: one mark per change.
      var found = [];
      (body.events || []).forEach(function (event) {
        var text = event.text || (event.servers + " server(s)");
        if (found.length && found[found.length - 1].text === text) return;
        found.push({ time: event.time, text: text, badge: String(event.servers || "?") });
      });
      return found;
    }).catch(function () {
      // No events.json (a page served elsewhere): changes of the lab's lab_layout_servers gauge.
      return queryRange("lab_layout_servers", start, end, 5).then(function (result) {
        var found = [];
        result.forEach(function (one) {
          var previous = null;
          one.values.forEach(function (pair) {
            if (previous !== null && pair[1] !== previous) {
              found.push({ time: pair[0], text: pair[1] + " server(s)", badge: String(pair[1]) });
            }
            previous = pair[1];
          });
        });
        return found;
      }).catch(function () { return []; });
    });
  }

  function refresh() {
    if (busy) return;
    busy = true;
    var rangeS = 60 * Number(rangeSelect.value || 15);
    var step = Math.max(5, Math.ceil(rangeS / 360));
    var end = Math.floor(Date.now() / 1000 / step) * step;
    var start = end - rangeS;
    var xs = [];
    for (var t = start; t <= end; t += step) xs.push(t);
    var errors = [];
    var markLoad = loadMarks(start, end).then(function (found) {
      marks = found;
      showMarks(start, end);
    });
    var panelLoads = panels.map(function (panel) {
      return Promise.all(panel.spec.queries.map(function (query) {
        return queryRange(query.expr, start, end, step).then(function (result) {
          return { legend: query.legend, result: result };
        });
      })).then(function (results) {
        return markLoad.then(function () { draw(panel, results, xs, start, step); });
      }).catch(function (error) {
        errors.push(panel.spec.title + ": " + error.message);
        panel.section.dataset.state = "error";
        panel.section.dataset.series = "0";
        panel.note.textContent = "Prometheus query failed: " + error.message;
      });
    });
    Promise.all(panelLoads).then(function () {
      refreshes++;
      document.body.dataset.loaded = String(refreshes);
      document.body.dataset.errors = String(errors.length);
      var time = new Date().toLocaleTimeString();
      if (errors.length) {
        statusLine.textContent = errors.length + " panel(s) failed at " + time + ": " + errors[0];
        statusLine.className = "status error";
      } else {
        var latest = marks.length ? " · layout: " + marks[marks.length - 1].text : "";
        statusLine.textContent = "updated " + time + latest;
        statusLine.className = "status";
      }
    }).finally(function () { busy = false; });
  }

  function schedule() {
    if (timer) clearInterval(timer);
    timer = liveBox.checked ? setInterval(refresh, refreshMs) : null;
  }

  function build(spec) {
    var main = document.getElementById("panels");
    spec.panels.forEach(function (panelSpec) {
      var section = document.createElement("section");
      section.className = "panel";
      section.id = "panel-" + panelSpec.id;
      section.dataset.panel = panelSpec.id;
      section.dataset.perServer = panelSpec.per_server ? "1" : "0";
      section.dataset.state = "loading";
      var heading = document.createElement("h2");
      heading.textContent = (panelSpec.contract ? panelSpec.contract + ". " : "") + panelSpec.title + " ";
      var unit = document.createElement("span");
      unit.className = "unit";
      unit.textContent = "(" + panelSpec.unit + (panelSpec.scale === "log" ? ", log scale" : "") + ")";
      heading.appendChild(unit);
      var description = document.createElement("p");
      description.className = "description";
      description.textContent = panelSpec.description;
      var chartBox = document.createElement("div");
      chartBox.className = "chart";
      var note = document.createElement("p");
      note.className = "empty";
      section.appendChild(heading);
      section.appendChild(description);
      section.appendChild(chartBox);
      section.appendChild(note);
      main.appendChild(section);
      panels.push({ spec: panelSpec, section: section, chartBox: chartBox, note: note,
        chart: null, seriesKey: "" });
    });
    document.title = spec.title;
    rangeSelect.addEventListener("change", refresh);
    liveBox.addEventListener("change", schedule);
    window.addEventListener("resize", function () {
      panels.forEach(function (panel) {
        if (panel.chart) panel.chart.setSize({ width: chartWidth(panel), height: 240 });
      });
    });
    refresh();
    schedule();
  }

  fetchJson("panels.json").then(build).catch(function (error) {
    statusLine.textContent = "cannot load panels.json: " + error.message;
    statusLine.className = "status error";
    document.body.dataset.errors = "1";
  });
})();
