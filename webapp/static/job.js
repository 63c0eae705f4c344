// A job's own page: follow the job's progress (the page carries its API URL in data-job-url).
"use strict";
ScanQueue.followJobPage(document.querySelector(".job-live"));
