// What Chromium laid out for report.html, for tests/test_report.py. The test
// appends this to a COPY of the report (the report itself has no script) and
// reads the JSON it leaves in <pre id="probe"> from --dump-dom. Boxes are page
// pixels [left, top, width, height]; points are the browser's parsed SVG points.
(function () {
  function box(el) {
    var r = el.getBoundingClientRect();
    return [r.left + window.scrollX, r.top + window.scrollY, r.width, r.height];
  }
  function chart(el) { var s = el.closest('svg'); return s ? s.getAttribute('class') : null; }
  function plot(el) {  // the chart's plot frame in its own SVG units: [x, y, w, h]
    var f = el.closest('svg').querySelector('rect[fill="none"]').getBBox();
    return [f.x, f.y, f.width, f.height];
  }
  var out = {series: [], faults: [], faultLabels: [], faultRows: [], fields: [], bars: [], rects: [], examples: [],
             details: [], sections: {}, text: {}};
  document.querySelectorAll('polyline.series').forEach(function (p) {
    var pts = [];
    for (var i = 0; i < p.points.numberOfItems; i++) { var q = p.points.getItem(i); pts.push([q.x, q.y]); }
    out.series.push({chart: chart(p), name: p.getAttribute('data-series'), length: p.getTotalLength(),
                     box: box(p), svg: box(p.closest('svg')), plot: plot(p), points: pts,
                     stroke: getComputedStyle(p).stroke});
  });
  document.querySelectorAll('rect.fault').forEach(function (r) {
    out.faults.push({chart: chart(r), box: box(r), svg: box(r.closest('svg')), plot: plot(r),
                     title: r.textContent, fill: getComputedStyle(r).fill});
  });
  document.querySelectorAll('#who svg text').forEach(function (t) { out.bars.push(t.textContent); });
  document.querySelectorAll('#who svg rect').forEach(function (r) { out.rects.push(box(r)); });
  document.querySelectorAll('.example').forEach(function (e) {
    // checkVisibility: false inside a closed <details> (its content is not rendered; boxes still measure)
    out.examples.push({section: e.closest('section').id, n: e.querySelector('h3').textContent, box: box(e),
                       folded: !!e.closest('details'), visible: e.checkVisibility()});
  });
  document.querySelectorAll('details').forEach(function (d) {
    out.details.push({section: d.closest('section').id, open: d.open,
                      summary: d.querySelector('summary').textContent, box: box(d)});
  });
  document.querySelectorAll('text.fault-label').forEach(function (t) {
    out.faultLabels.push({chart: chart(t), text: t.textContent, box: box(t)});
  });
  document.querySelectorAll('#fault-table tr').forEach(function (tr) {
    var cells = [];
    tr.querySelectorAll('th,td').forEach(function (c) { cells.push(c.innerText); });
    out.faultRows.push({cells: cells, box: box(tr)});
  });
  document.querySelectorAll('.example tr').forEach(function (tr) {
    var th = tr.querySelector('th'), td = tr.querySelector('td');
    if (th && td && tr.closest('table.kv')) out.fields.push([th.innerText, td.innerText]);
  });
  ['verdict', 'totals', 'timeline', 'fault-table', 'rps', 'who', 'invariants'].forEach(function (id) {
    var el = document.getElementById(id);
    out.sections[id] = el ? box(el) : null;
    out.text[id] = el ? el.innerText : null;
  });
  var grid = document.querySelector('.grid');  // the latency charts, one card per operation
  out.text.latency = grid ? grid.innerText : null;
  var pre = document.createElement('pre');
  pre.id = 'probe';
  pre.hidden = true;
  pre.textContent = JSON.stringify(out);
  document.body.appendChild(pre);
})();
