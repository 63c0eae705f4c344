// Follow jobs through the JSON API (session cookie), honouring Retry-After between polls.
"use strict";
const ScanQueue = (() => {
  const FINAL = new Set(["succeeded", "failed", "cancelled"]);
  const csrfToken = () => document.querySelector('meta[name="csrf-token"]').content;

  async function poll(url, onUpdate) {
    let job = null;
    let etag = null;
    for (;;) {
      // Send back the job's last ETag: an unchanged job is a 304 without a body. API answers
      // are never cached (no-store), so the page keeps the last copy itself.
      const headers = { Accept: "application/json" };
      if (etag) headers["If-None-Match"] = etag;
      const response = await fetch(url, { headers, cache: "no-store" });
      if (response.status !== 304) {
        if (!response.ok) throw new Error(`status ${response.status} from ${url}`);
        job = await response.json();
        etag = response.headers.get("ETag");
        onUpdate(job);
      }
      if (FINAL.has(job.status)) return job;
      const wait = Number(response.headers.get("Retry-After")) || 1;
      await new Promise((resolve) => setTimeout(resolve, wait * 1000));
    }
  }

  function render(element, job) {
    element.querySelector('[data-role="status"]').textContent = job.status;
    element.querySelector('[data-role="status"]').className = `status ${job.status}`;
    element.querySelector('[data-role="progress"]').value = job.progress;
    element.querySelector('[data-role="percent"]').textContent = `${job.progress} %`;
  }

  // On a job's own page: update the bar, then reload once to show the result.
  function followJobPage(element) {
    if (!element || element.dataset.final === "yes") return;
    poll(element.dataset.jobUrl, (job) => render(element, job)).then(() => window.location.reload());
  }

  return { csrfToken, poll, render, followJobPage };
})();
