// pytest-llmprec HTML report: sortable, filterable tables and plot pointers; no dependencies.
(function () {
  "use strict";
  var PAGE = 100;

  function readJson(id) {
    var element = document.getElementById(id);
    return element ? JSON.parse(element.textContent) : null;
  }

  // Columns as html_table.py stores them, back to one array of cells per row.
  function decodeColumn(column) {
    var numeric = column.kind === "float" || column.kind === "int";
    var values = column.codes ? column.codes.map(function (code) { return column.dictionary[code]; }) : column.values;
    return values.map(function (value) {
      if (value === null) return numeric ? NaN : "";
      if (numeric && typeof value === "string") return value === "inf" ? Infinity : -Infinity;
      if (typeof value === "string" && column.prefix) return column.prefix + value;
      return value;
    });
  }

  function decode(table) {
    var cells = [];
    table.columns.forEach(function (column, j) {
      if (column.derive) return;
      cells[j] = decodeColumn(column);
    });
    table.columns.forEach(function (column, j) {
      if (column.derive === "deficit") {
        cells[j] = cells[column.source].map(function (value) { return typeof value === "number" ? 1 - value : NaN; });
      }
      if (column.same !== undefined) {
        var other = cells[column.same];
        cells[j] = cells[j].map(function (value, i) { return value === 0 ? other[i] : value; });
      }
    });
    var rows = [];
    for (var i = 0; i < table.count; i++) {
      rows.push(cells.map(function (column) { return column[i]; }));
    }
    return rows;
  }

  function formatNumber(value, column) {
    if (typeof value !== "number" || isNaN(value)) return "";
    if (column.kind === "int" || Number.isInteger(value) && Math.abs(value) < 1e15) return String(value);
    if (!isFinite(value)) return value > 0 ? "inf" : "-inf";
    var magnitude = Math.abs(value);
    var digits = column.digits || 4;
    if (magnitude !== 0 && (magnitude < 1e-3 || magnitude >= 1e6)) return value.toExponential(digits - 1);
    return String(Number(value.toPrecision(digits)));
  }

  function compare(a, b) {
    var an = typeof a === "number", bn = typeof b === "number";
    if (an && bn) {
      if (isNaN(a)) return isNaN(b) ? 0 : 1;
      if (isNaN(b)) return -1;
      return a - b;
    }
    if (an !== bn) return an ? -1 : 1;
    return String(a).localeCompare(String(b));
  }

  function stripMember(text) {
    return text.replace(/\[[^\[\]]*\]$/, "");
  }

  function href(column, text) {
    var parts = stripMember(text).split("/").map(encodeURIComponent);
    return column.base + parts.join("/");
  }

  function element(tag, attributes, text) {
    var node = document.createElement(tag);
    Object.keys(attributes || {}).forEach(function (name) { node.setAttribute(name, attributes[name]); });
    if (text !== undefined) node.textContent = text;
    return node;
  }

  function Table(container, table) {
    this.container = container;
    this.columns = table.columns;
    this.rows = decode(table);
    this.status = table.status;
    this.filtered = this.rows.map(function (_, i) { return i; });
    this.sortColumn = -1;
    this.sortDescending = false;
    this.page = 0;
    this.build();
    this.apply();
  }

  Table.prototype.build = function () {
    var self = this;
    var controls = element("div", { "class": "controls" });
    this.nameInput = element("input", { type: "text", "class": "filter-name", placeholder: "filter by name (text or /regex/)" });
    controls.appendChild(this.nameInput);
    if (this.status >= 0) {
      this.statusSelect = element("select", { "class": "filter-status" });
      var values = {};
      this.rows.forEach(function (row) { values[row[self.status]] = true; });
      this.statusSelect.appendChild(element("option", { value: "" }, "any status"));
      Object.keys(values).sort().forEach(function (value) {
        self.statusSelect.appendChild(element("option", { value: value }, value || "(none)"));
      });
      controls.appendChild(this.statusSelect);
      this.statusSelect.addEventListener("change", function () { self.apply(); });
    }
    var metrics = [];
    this.columns.forEach(function (column, j) { if (column.kind === "float") metrics.push(j); });
    if (metrics.length) {
      this.metricSelect = element("select", { "class": "filter-metric" });
      metrics.forEach(function (j) { self.metricSelect.appendChild(element("option", { value: String(j) }, self.columns[j].label)); });
      this.opSelect = element("select", { "class": "filter-op" });
      this.opSelect.appendChild(element("option", { value: ">=" }, "\u2265"));
      this.opSelect.appendChild(element("option", { value: "<=" }, "\u2264"));
      this.valueInput = element("input", { type: "text", "class": "filter-value", placeholder: "value" });
      [this.metricSelect, this.opSelect, this.valueInput].forEach(function (node) {
        controls.appendChild(node);
        node.addEventListener(node.tagName === "INPUT" ? "input" : "change", function () { self.apply(); });
      });
    }
    this.countLabel = element("span", { "class": "count note" });
    controls.appendChild(this.countLabel);
    this.nameInput.addEventListener("input", function () { self.apply(); });
    this.container.appendChild(controls);

    var tableNode = element("table", { "class": "data" });
    var head = element("thead");
    var headRow = element("tr");
    this.headers = this.columns.map(function (column, j) {
      var th = element("th", { title: column.title || column.label }, column.label);
      th.addEventListener("click", function () { self.sortBy(j); });
      headRow.appendChild(th);
      return th;
    });
    head.appendChild(headRow);
    tableNode.appendChild(head);
    this.body = element("tbody");
    tableNode.appendChild(this.body);
    this.container.appendChild(tableNode);

    var pager = element("div", { "class": "pager" });
    this.previous = element("button", { type: "button", "class": "previous" }, "previous");
    this.next = element("button", { type: "button", "class": "next" }, "next");
    this.pageLabel = element("span", { "class": "note" });
    this.previous.addEventListener("click", function () { self.page -= 1; self.render(); });
    this.next.addEventListener("click", function () { self.page += 1; self.render(); });
    [this.previous, this.next, this.pageLabel].forEach(function (node) { pager.appendChild(node); });
    this.container.appendChild(pager);
  };

  Table.prototype.setName = function (text) {
    this.nameInput.value = text;
    this.apply();
  };

  Table.prototype.matcher = function () {
    var text = this.nameInput.value.trim();
    if (!text) return null;
    var regex = /^\/(.*)\/$/.exec(text);
    if (regex) {
      try { var pattern = new RegExp(regex[1], "i"); return function (value) { return pattern.test(value); }; }
      catch (error) { return function () { return false; }; }
    }
    var lower = text.toLowerCase();
    return function (value) { return value.toLowerCase().indexOf(lower) >= 0; };
  };

  Table.prototype.apply = function () {
    var self = this;
    var matches = this.matcher();
    var texts = [];
    this.columns.forEach(function (column, j) { if (column.kind === "text" || column.kind === "link") texts.push(j); });
    var status = this.statusSelect ? this.statusSelect.value : "";
    var metric = -1, bound = NaN, op = ">=";
    if (this.valueInput && this.valueInput.value.trim() !== "") {
      metric = Number(this.metricSelect.value);
      bound = Number(this.valueInput.value);
      op = this.opSelect.value;
    }
    var kept = [];
    this.rows.forEach(function (row, i) {
      if (status && String(row[self.status]) !== status) return;
      if (metric >= 0 && !isNaN(bound)) {
        var value = row[metric];
        if (typeof value !== "number" || isNaN(value) || (op === ">=" ? value < bound : value > bound)) return;
      }
      if (matches && !texts.some(function (j) { return matches(String(row[j])); })) return;
      kept.push(i);
    });
    this.filtered = kept;
    this.sort();
    this.page = 0;
    this.render();
  };

  Table.prototype.sortBy = function (j) {
    this.sortDescending = this.sortColumn === j ? !this.sortDescending : false;
    this.sortColumn = j;
    this.sort();
    this.render();
  };

  Table.prototype.sort = function () {
    var j = this.sortColumn, rows = this.rows, sign = this.sortDescending ? -1 : 1;
    if (j < 0) return;
    this.filtered.sort(function (a, b) { return sign * compare(rows[a][j], rows[b][j]) || a - b; });
    this.headers.forEach(function (th, k) {
      th.className = k === j ? (sign > 0 ? "sorted-asc" : "sorted-desc") : "";
    });
  };

  Table.prototype.render = function () {
    var self = this;
    var pages = Math.max(1, Math.ceil(this.filtered.length / PAGE));
    this.page = Math.min(Math.max(this.page, 0), pages - 1);
    var start = this.page * PAGE;
    var shown = this.filtered.slice(start, start + PAGE);
    var fragment = document.createDocumentFragment();
    shown.forEach(function (i) {
      var row = self.rows[i];
      var tr = element("tr");
      if (self.status >= 0) tr.className = String(row[self.status]);
      self.columns.forEach(function (column, j) {
        var value = row[j];
        var td = element("td");
        if (column.kind === "float" || column.kind === "int") {
          td.className = "num";
          td.textContent = formatNumber(value, column);
          if (typeof value === "number" && !isNaN(value)) td.title = String(value);
        } else if (column.kind === "link" && value !== "") {
          var link = element("a", { href: href(column, value), title: column.folder + "/" + value }, value);
          td.appendChild(link);
        } else {
          td.textContent = String(value);
          if (j === self.status) td.className = "status-" + String(value);
          if (column.wrap) td.className = "wrap";
        }
        tr.appendChild(td);
      });
      fragment.appendChild(tr);
    });
    this.body.textContent = "";
    this.body.appendChild(fragment);
    this.countLabel.textContent = this.filtered.length + " of " + this.rows.length + " rows";
    this.pageLabel.textContent = "page " + (this.page + 1) + " of " + pages;
    this.previous.disabled = this.page === 0;
    this.next.disabled = this.page >= pages - 1;
  };

  function plotPointers(tables, plotRows) {
    var pairs = tables.pairs;
    if (!pairs || !plotRows) return;
    var tooltip = element("div", { "class": "tooltip" });
    document.body.appendChild(tooltip);
    var keyColumn = pairs.columns.map(function (c) { return c.key; }).indexOf("pair_key");
    Array.prototype.forEach.call(document.querySelectorAll("svg.plot"), function (svg) {
      var indexes = plotRows[svg.id];
      var hover = svg.querySelector("rect.hover");
      if (!indexes || !hover || !indexes.length) return;
      var left = Number(svg.getAttribute("data-left")), span = Number(svg.getAttribute("data-span"));
      var width = Number(svg.viewBox.baseVal.width);
      function positionOf(event) {
        var box = svg.getBoundingClientRect();
        var x = (event.clientX - box.left) * width / box.width;
        var share = (x - left) / span;
        return Math.min(indexes.length - 1, Math.max(0, Math.round(share * (indexes.length - 1))));
      }
      hover.addEventListener("mousemove", function (event) {
        var row = pairs.rows[indexes[positionOf(event)]];
        var parts = [];
        pairs.columns.forEach(function (column, j) {
          if (column.tooltip) parts.push(column.label + " " + (column.kind === "float" ? formatNumber(row[j], column) : row[j]));
        });
        tooltip.textContent = parts.join("  \u00b7  ");
        tooltip.style.left = (event.clientX + 14) + "px";
        tooltip.style.top = (event.clientY + 14) + "px";
        tooltip.style.display = "block";
      });
      hover.addEventListener("mouseleave", function () { tooltip.style.display = "none"; });
      hover.addEventListener("click", function (event) {
        var row = pairs.rows[indexes[positionOf(event)]];
        pairs.setName(String(row[keyColumn]));
        pairs.container.scrollIntoView();
      });
    });
  }

  function fromHash(tables) {
    var match = /[#&]filter=([^&]*)/.exec(window.location.hash);
    if (match && tables.pairs) tables.pairs.setName(decodeURIComponent(match[1]));
  }

  document.addEventListener("DOMContentLoaded", function () {
    var tables = {};
    Array.prototype.forEach.call(document.querySelectorAll("div.table[data-table]"), function (container) {
      var name = container.getAttribute("data-table");
      var data = readJson("data-" + name);
      if (data) tables[name] = new Table(container, data);
    });
    plotPointers(tables, readJson("data-plot-rows"));
    fromHash(tables);
    window.addEventListener("hashchange", function () { fromHash(tables); });
    window.llmprecTables = tables;
  });
})();
