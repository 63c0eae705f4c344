// The upload page: pick files (drag and drop or the file input), submit to the JSON API with the
// session's CSRF token, then follow every job it created with a live progress bar.
"use strict";
(() => {
  const form = document.getElementById("upload-form");
  const typeSelect = document.getElementById("job-type");
  const fileInput = document.getElementById("file-input");
  const dropZone = document.getElementById("drop-zone");
  const fileList = document.getElementById("file-list");
  const dateList = document.getElementById("date-list");
  const errorBox = document.getElementById("upload-error");
  let files = [];

  function selectedType() {
    return typeSelect.options[typeSelect.selectedIndex].dataset;
  }

  // The params the selected type takes (and needs), from its declaration via data- attributes.
  const takes = (name) => selectedType().params.split(" ").includes(name);
  const needs = (name) => selectedType().required.split(" ").includes(name);

  function refresh() {
    for (const field of document.querySelectorAll("[data-param]")) {
      // A model list is shown only for the types whose model task it lists.
      const fits = !field.dataset.modelTask || field.dataset.modelTask === selectedType().modelTask;
      field.hidden = !takes(field.dataset.param) || !fits;
      const mark = field.querySelector("[data-required-mark]");
      if (mark) mark.hidden = !needs(field.dataset.param);
    }
    for (const option of document.querySelectorAll('.model-choice option[value=""]')) {
      option.textContent = selectedType().defaultModel ? `the default (${selectedType().defaultModel})` : "the default";
    }
    for (const span of document.querySelectorAll("#job-description span")) {
      span.hidden = span.dataset.type !== typeSelect.value;
    }
    fileList.replaceChildren(...files.map((file) => {
      const item = document.createElement("li");
      item.textContent = `${file.name} (${Math.round(file.size / 1024)} kB)`;
      return item;
    }));
    dateList.replaceChildren(...files.map((file) => {
      const item = document.createElement("li");
      const input = document.createElement("input");
      input.type = "date";
      input.setAttribute("aria-label", `date of ${file.name}`);
      item.append(`${file.name} `, input);
      return item;
    }));
  }

  function addFiles(list) {
    files = files.concat(Array.from(list));
    refresh();
  }

  fileInput.addEventListener("change", () => { addFiles(fileInput.files); fileInput.value = ""; });
  typeSelect.addEventListener("change", refresh);
  for (const name of ["dragenter", "dragover"]) {
    dropZone.addEventListener(name, (event) => { event.preventDefault(); dropZone.classList.add("over"); });
  }
  for (const name of ["dragleave", "drop"]) {
    dropZone.addEventListener(name, () => dropZone.classList.remove("over"));
  }
  dropZone.addEventListener("drop", (event) => { event.preventDefault(); addFiles(event.dataTransfer.files); });

  function params() {
    const result = {};
    const spacing = document.getElementById("pixel-spacing").value;
    if (takes("pixel_spacing_mm") && spacing) result.pixel_spacing_mm = Number(spacing);
    const choice = document.querySelector('.model-field:not([hidden]) select');
    if (choice && choice.value) {
      const [model, version] = choice.value.split("@");
      result.model = model;
      if (version) result.model_version = version;
    }
    if (takes("taken_at")) {
      const dates = Array.from(dateList.querySelectorAll("input")).map((input) => input.value);
      if (dates.some(Boolean)) result.taken_at = dates;
    }
    const scanDate = document.getElementById("scan-date").value;
    if (takes("scan_date") && scanDate) result.scan_date = scanDate;
    const age = document.getElementById("gestational-age").value;
    if (takes("gestational_age_days") && age) result.gestational_age_days = Number(age);
    return result;
  }

  function jobRow(job) {
    const item = document.createElement("li");
    item.className = "job-live";
    item.innerHTML = `<a></a> <span data-role="status"></span>
      <progress max="100" data-role="progress"></progress> <span data-role="percent"></span>
      <span data-role="summary"></span>`;
    item.querySelector("a").href = `/jobs/${job.id}`;
    item.querySelector("a").textContent = `${job.type} ${job.id.slice(0, 8)}`;
    ScanQueue.render(item, job);
    document.getElementById("job-list").prepend(item);
    document.getElementById("jobs-section").hidden = false;
    ScanQueue.poll(job.url, (update) => ScanQueue.render(item, update)).then((done) => {
      const summary = item.querySelector('[data-role="summary"]');
      if (done.error) { summary.textContent = `— ${done.error.message}`; return; }
      // The result key and unit the job's type declares for its summary (data- attributes).
      const option = Array.from(typeSelect.options).find((o) => o.value === done.type);
      const key = option ? option.dataset.summaryKey : "";
      const value = key && done.result ? done.result[key] : null;
      if (value === null || value === undefined) return;
      const shown = typeof value === "number" && !Number.isInteger(value) ? value.toFixed(1) : value;
      summary.textContent = `— ${shown} ${option.dataset.summaryUnit}`.trimEnd();
    }).catch((error) => { item.querySelector('[data-role="summary"]').textContent = ` (${error.message})`; });
  }

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    errorBox.textContent = "";
    if (!files.length) { errorBox.textContent = "Choose at least one file."; return; }
    const body = new FormData();
    body.append("type", typeSelect.value);
    body.append("params", JSON.stringify(params()));
    const subject = document.getElementById("subject").value;
    if (subject) body.append("subject_id", subject);
    for (const file of files) body.append("files", file, file.name);
    const button = document.getElementById("submit");
    button.disabled = true;
    try {
      const response = await fetch("/api/v1/jobs", {
        method: "POST", body, headers: { "X-CSRFToken": ScanQueue.csrfToken(), Accept: "application/json" },
      });
      const answer = await response.json();
      if (!response.ok) { errorBox.textContent = answer.error ? answer.error.message : `Error ${response.status}`; return; }
      (answer.jobs || [answer]).forEach(jobRow);
      files = [];
      refresh();
    } catch (error) {
      errorBox.textContent = `Upload failed: ${error.message}`;
    } finally {
      button.disabled = false;
    }
  });
  refresh();
})();
