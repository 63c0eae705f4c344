// Follow jobs through the JSON API (session cookie), honouring Retry-After between polls.
"use strict";
const ScanQueue = (() => {
  const FINAL = new Set(["succeeded", "failed", "cancelled"]);
  const csrfToken = () => document.querySelector('meta[name="csrf-token"]').content;

  async function poll(url, onUpdate) {
    for (;;) {
      const response = await fetch(url, { headers: { Accept: "application/json" } });
      if (!response.ok) throw new Error(`status ${response.status} from ${url}`);
      const job = await response.json();
      onUpdate(job);
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
