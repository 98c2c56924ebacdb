// dashboard.js: draws panels.json from Prometheus's HTTP API with uPlot, refreshing every few seconds.
//
// Everything is fetched relative to the page: panels.json, events.json (the lab's layout changes)
// and prometheus/api/v1/... (the lab's nginx forwards /dashboard/prometheus/ to Prometheus).
// ?prometheus=http://127.0.0.1:9090/ points the page at another Prometheus instead.
//
// After each refresh every panel carries what it drew as data attributes, for tests and scripts:
//   data-state="ok|empty|error"  data-series=N (series with at least one value)
//   data-points=N (values drawn)  data-servers="app,app2" (server labels with data)
// and <body> carries data-loaded (refreshes done), data-marks (layout changes in range).
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

  // The layout changes as vertical dashed lines, with their text at the top.
  function marksPlugin() {
    return {
      hooks: {
        draw: [function (u) {
          var ctx = u.ctx;
          var min = u.scales.x.min, max = u.scales.x.max;
          ctx.save();
          ctx.strokeStyle = "#f08c00";
          ctx.fillStyle = "#b35c00";
          ctx.lineWidth = 2 * devicePixelRatio;
          ctx.setLineDash([6 * devicePixelRatio, 4 * devicePixelRatio]);
          ctx.font = (11 * devicePixelRatio) + "px sans-serif";
          var shown = 0;
          marks.forEach(function (mark) {
            if (mark.time < min || mark.time > max) return;
            var x = Math.round(u.valToPos(mark.time, "x", true));
            ctx.beginPath();
            ctx.moveTo(x, u.bbox.top);
            ctx.lineTo(x, u.bbox.top + u.bbox.height);
            ctx.stroke();
            // Labels of nearby marks are staggered so they do not overwrite each other; a
            // label near the right edge is written to the left of its line.
            var width = ctx.measureText(mark.text).width;
            var textX = x + 4 * devicePixelRatio;
            if (textX + width > u.bbox.left + u.bbox.width) textX = x - 4 * devicePixelRatio - width;
            ctx.fillText(mark.text, textX, u.bbox.top + (12 + 13 * (shown % 3)) * devicePixelRatio);
            shown++;
          });
          ctx.restore();
        }]
      }
    };
  }

  function chartWidth(panel) {
    return Math.max(300, panel.chartBox.clientWidth || panel.section.clientWidth - 20);
  }

  function makeChart(panel, series, data) {
    if (panel.chart) panel.chart.destroy();
    panel.chartBox.innerHTML = "";
    var unit = panel.spec.unit;
    var options = {
      width: chartWidth(panel),
      height: 240,
      plugins: [marksPlugin()],
      scales: { x: { time: true }, y: { range: function (u, min, max) {
        return [0, max > 0 ? max * 1.1 : 1];
      } } },
      axes: [{ values: function (u, ticks) {
        return ticks.map(function (t) {
          return new Date(t * 1000).toLocaleTimeString([], { hour12: false });
        });
      } }, { size: 60, values: function (u, ticks) {
        return ticks.map(function (v) { return Math.abs(v) >= 1000 ? (v / 1000) + "k" : String(v); });
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
        found.push({ time: event.time, text: text });
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
              found.push({ time: pair[0], text: pair[1] + " server(s)" });
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
      document.body.dataset.marks = String(marks.filter(function (m) {
        return m.time >= start && m.time <= end;
      }).length);
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
      unit.textContent = "(" + panelSpec.unit + ")";
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
