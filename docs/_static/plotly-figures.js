// Draw every plotly figure of the page with the site's own plotly.js. The docs build writes each figure of an
// executed notebook as <div class="mlops-wb-plotly"><script type="application/json">FIGURE</script></div>.
(function () {
  function draw() {
    document.querySelectorAll("div.mlops-wb-plotly:not([data-drawn])").forEach(function (div) {
      var fig = JSON.parse(div.querySelector("script[type='application/json']").textContent);
      var layout = Object.assign({}, fig.layout || {});
      layout.autosize = true;
      delete layout.width;  // fit the column of the page
      div.setAttribute("data-drawn", "1");
      var target = document.createElement("div");
      target.className = "mlops-wb-plotly-figure";
      div.appendChild(target);
      Plotly.newPlot(target, fig.data || [], layout, {responsive: true, displaylogo: false});
    });
  }
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", draw);
  else draw();
})();
