/* cnn-mnist front end: draw a digit (mouse, touch or keyboard) or upload an image of one,
 * POST it to ./predict, show the answer. Vanilla JS, no dependencies, works offline. */
(function () {
  "use strict";

  var THROTTLE_MS = 150;
  var PEN_STEP = 10;        // canvas pixels per arrow key press ...
  var PEN_BIG_STEP = 40;    // ... and with Shift

  var canvas = document.getElementById("canvas");
  var ctx = canvas.getContext("2d");
  var clearButton = document.getElementById("clear");
  var predictButton = document.getElementById("predict");
  var upload = document.getElementById("upload");
  var canvasWrap = document.getElementById("canvas-wrap");
  var penMark = document.getElementById("pen");
  var penState = document.getElementById("pen-state");
  var result = document.getElementById("result");
  var prediction = document.getElementById("prediction");
  var confidence = document.getElementById("confidence");
  var bars = Array.prototype.slice.call(
    document.querySelectorAll("#probabilities [data-digit]"));
  var statusLine = document.getElementById("status");
  var modelInfo = document.getElementById("model");
  var canaryInfo = document.getElementById("canary");
  var seen = document.getElementById("seen");
  var seenImage = document.getElementById("input");
  var correction = document.getElementById("correction");
  var correctionDigits = document.getElementById("correction-digits");
  var correctionStatus = document.getElementById("correction-status");
  var correctionsOn = false;  // /readyz says the server keeps corrections: the buttons are added then
  var corrected = null;       // what the "Wrong? It was:" buttons correct: { input, digit, version, sent }
  var servingVersion = null;  // the model version the footer's canary accuracy belongs to
  var modelRequest = false;   // a GET readyz in flight

  // Drawing state.
  var drawing = false;
  var pointerId = null;
  var last = null;
  var hasInk = false;
  var shown = "none";      // what the results are for: "none", "drawing" or "upload"

  // The keyboard pen: a position on the canvas, and whether it is down (drawing).
  var pen = { x: canvas.width / 2, y: canvas.height / 2 };
  var penDown = false;

  // Request state: at most one request in flight; while it runs, newer
  // drawings only set `pending`, and the latest one is sent when it returns.
  var inFlight = false;
  var pending = false;
  var controller = null;
  var generation = 0;      // bumped by Clear: answers for older drawings are dropped
  var lastSent = 0;
  var timer = null;
  var retryTimer = null;   // a 503's one retry, after its Retry-After

  function setupPen() {
    ctx.lineWidth = canvas.width / 14;
    ctx.lineCap = "round";
    ctx.lineJoin = "round";
    ctx.strokeStyle = "#000";
    ctx.fillStyle = "#000";
  }
  setupPen();

  function toCanvas(ev) {
    var rect = canvas.getBoundingClientRect();
    return {
      x: (ev.clientX - rect.left) * (canvas.width / rect.width),
      y: (ev.clientY - rect.top) * (canvas.height / rect.height)
    };
  }

  function dot(p) {
    ctx.beginPath();
    ctx.arc(p.x, p.y, ctx.lineWidth / 2, 0, 2 * Math.PI);
    ctx.fill();
  }

  function segment(a, b) {
    ctx.beginPath();
    ctx.moveTo(a.x, a.y);
    ctx.lineTo(b.x, b.y);
    ctx.stroke();
  }

  function setBusy() {
    var busy = inFlight || pending || timer !== null || retryTimer !== null;
    if (busy) {
      result.setAttribute("aria-busy", "true");
    } else {
      result.removeAttribute("aria-busy");
    }
  }

  // `failure` (from describeFailure) marks the line with the HTTP status (0: no answer) and a kind.
  function setStatus(text, failure) {
    statusLine.textContent = text || "";
    statusLine.classList.toggle("error", !!failure);
    if (failure) {
      statusLine.setAttribute("data-status", String(failure.status));
      statusLine.setAttribute("data-kind", failure.kind);
      if (!prediction.textContent) {
        confidence.textContent = "No prediction.";
      }
    } else {
      statusLine.removeAttribute("data-status");
      statusLine.removeAttribute("data-kind");
    }
  }

  function showFailure(failure) {
    setStatus(failure.message, failure);
  }

  function resetResults() {
    prediction.textContent = "";
    confidence.textContent = "Draw or upload a digit to start.";
    shown = "none";
    bars.forEach(function (bar) {
      bar.setAttribute("data-probability", "0");
      bar.classList.remove("top");
      bar.querySelector(".bar-fill").style.width = "0%";
      bar.querySelector(".bar-value").textContent = "0.0%";
    });
    seen.hidden = true;
    seenImage.removeAttribute("src");
    corrected = null;
    showCorrection();
  }

  function percent(p) {
    return (100 * p).toFixed(1) + "%";
  }

  // An answer that is not the API's: thrown by showAnswer, told apart by its type.
  function BadAnswer() {
    this.name = "BadAnswer";
  }

  function showAnswer(data, source) {
    var probs = data.probabilities;
    if (!Array.isArray(probs) || probs.length !== 10 || typeof data.digit !== "number") {
      throw new BadAnswer();
    }
    bars.forEach(function (bar, i) {
      var p = Number(probs[i]) || 0;
      bar.setAttribute("data-probability", p.toFixed(6));
      bar.classList.toggle("top", i === data.digit);
      bar.querySelector(".bar-fill").style.width = Math.max(0, Math.min(100, 100 * p)) + "%";
      bar.querySelector(".bar-value").textContent = percent(p);
    });
    prediction.textContent = String(data.digit);
    confidence.textContent = percent(Number(probs[data.digit]) || 0) + " confident" +
      (source.file ? " · " + source.file : "");
    shown = source.file ? "upload" : "drawing";
    if (typeof data.input === "string" && data.input.indexOf("data:image/png;base64,") === 0) {
      seenImage.src = data.input;
      seen.hidden = false;
      corrected = { input: data.input, digit: data.digit, version: data.model && data.model.version, sent: false };
      correctionStatus.textContent = "";
      correctionStatus.classList.remove("error");
      showCorrection();
    }
    if (data.model && data.model.version !== servingVersion) {
      describeModel(data.model);
      loadModel();  // another version answers (a reload): fetch its canary accuracy
    }
  }

  function describeModel(m) {
    var text = [m.name, m.version].filter(Boolean).join(" ");
    if (m.sha256) {
      text += " · sha256 " + String(m.sha256).slice(0, 12);
      modelInfo.title = "sha256 " + m.sha256;
    }
    modelInfo.textContent = text || "–";
  }

  // The footer: the serving model and the accuracy it scored on its canary set when it was loaded.
  function loadModel() {
    if (modelRequest) {
      return;
    }
    modelRequest = true;
    fetch("readyz").then(function (res) {
      return res.ok ? res.json() : null;
    }).then(function (data) {
      var m = data && data.model;
      if (!m) {
        return;  // not ready (a 503 while loading or draining): the next answer asks again
      }
      describeModel(m);
      canaryInfo.textContent = typeof m.canary_accuracy === "number"
        ? " · canary accuracy " + percent(m.canary_accuracy)
        : "";
      servingVersion = m.version;
      if (data.corrections === true && !correctionsOn) {
        correctionsOn = true;
        addCorrectionButtons();
        showCorrection();
      }
    }).catch(function () {
      // The server is unreachable: predictions say so in the status line; the footer keeps its text.
    }).then(function () {
      modelRequest = false;
    });
  }

  // ---- Corrections: "Wrong? It was: 0 … 9" sends the 28x28 image the model saw and the digit ----------

  function addCorrectionButtons() {
    for (var d = 0; d <= 9; d++) {
      var button = document.createElement("button");
      button.type = "button";
      button.id = "correct-" + d;
      button.className = "secondary";
      button.textContent = String(d);
      button.addEventListener("click", sendCorrection.bind(null, d));
      correctionDigits.appendChild(button);
    }
  }

  // The buttons for the answer shown: the predicted digit and, once one is sent, all are aria-disabled
  // (not disabled: the focus stays where the keyboard left it).
  function showCorrection() {
    correction.hidden = !(correctionsOn && corrected);
    Array.prototype.forEach.call(correctionDigits.children, function (button, d) {
      var off = !corrected || corrected.sent || d === corrected.digit;
      button.setAttribute("aria-disabled", off ? "true" : "false");
    });
  }

  function sendCorrection(label) {
    var sending = corrected;
    if (!sending || sending.sent || label === sending.digit) {
      return;
    }
    sending.sent = true;
    showCorrection();
    correctionStatus.classList.remove("error");
    correctionStatus.textContent = "Sending…";
    var body = { input: sending.input, label: label, predicted: sending.digit };
    if (sending.version) {
      body.model_version = String(sending.version);
    }
    fetch("v1/corrections", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify(body)
    }).then(function (res) {
      return res.json().then(
        function (data) { return { res: res, data: data }; },
        function () { return { res: res, data: null }; });
    }).then(function (r) {
      if (sending !== corrected) {
        return;  // another answer (or Clear) replaced it meanwhile
      }
      var said = r.data && typeof r.data.error === "string" ? r.data.error : "";
      if (r.res.ok && r.data && r.data.id) {
        correctionStatus.textContent = (r.res.status === 201 ? "Thank you: kept as a " : "Already kept as a ") +
          label + ", for review (correction " + r.data.id + ").";
        return;
      }
      sending.sent = false;  // not kept: the person may try again
      showCorrection();
      correctionStatus.classList.add("error");
      if (r.res.status === 429) {
        var wait = Number(r.res.headers.get("Retry-After")) || 60;
        correctionStatus.textContent = "Too many corrections from here just now – try again in " + wait + " s.";
      } else {
        correctionStatus.textContent = "Not kept: " + (said || "the server answered " + r.res.status) + ".";
      }
    }).catch(function () {
      if (sending === corrected) {
        sending.sent = false;
        showCorrection();
        correctionStatus.classList.add("error");
        correctionStatus.textContent = "Not kept: could not reach the server.";
      }
    });
  }

  // What went wrong, from the HTTP status (the API's JSON errors carry no code of their own):
  // { status, kind, message }. The server's own explanation ("error") is shown where it is the
  // client's to fix; the page's reaction never depends on its wording.
  function describeFailure(status, data, statusText) {
    var said = data && typeof data.error === "string" ? data.error : "";
    var answered = "The server answered " + status + (statusText ? " " + statusText : "") + ".";
    if (status === 0) {
      return { status: 0, kind: "network", message: "Could not reach the server – is it still running?" };
    }
    if (status >= 200 && status < 300) {
      return { status: status, kind: "bad-answer", message: "Unexpected answer from the server." };
    }
    if (status === 413) {
      return { status: status, kind: "too-large",
        message: "The image is too large for the server" + (said ? " (" + said + ")" : "") +
          ". Try a smaller or cropped image." };
    }
    if (status === 415) {
      return { status: status, kind: "format", message: said || "The server does not read this image format; send PNG or JPEG." };
    }
    if (status === 429 || status === 503) {
      return { status: status, kind: "busy", message: "The model is busy or not ready yet – try again in a moment." };
    }
    if (status === 404 || status === 405) {
      return { status: status, kind: "no-api", message: "This server has no prediction API here (" + status + ")." };
    }
    if (status >= 400 && status < 500) {
      return { status: status, kind: "input", message: said || answered };
    }
    return { status: status, kind: "server",
      message: "The server failed (" + status + ") – try again; if it keeps failing, see the server's log." };
  }

  // POST one request to ./predict and show its answer; at most one is in flight (`inFlight`).
  // source: { file: name } for an upload, {} for the drawing.
  function send(body, headers, source) {
    if (retryTimer !== null) {
      clearTimeout(retryTimer);  // this request supersedes a retry of an older one
      retryTimer = null;
    }
    inFlight = true;
    pending = false;
    lastSent = Date.now();
    setBusy();

    var gen = generation;
    controller = typeof AbortController === "function" ? new AbortController() : null;

    fetch("predict", {
      method: "POST",
      headers: headers,
      body: body,
      signal: controller ? controller.signal : undefined
    }).then(function (res) {
      return res.json().then(
        function (data) { return { res: res, data: data }; },
        function () { return { res: res, data: null }; });
    }).then(function (r) {
      if (gen !== generation) {
        return;  // cleared (or replaced by another drawing or upload) meanwhile
      }
      if (!r.res.ok || !r.data || typeof r.data !== "object") {
        var failure = describeFailure(r.res.status, r.data, r.res.statusText);  // a 2xx here: not JSON
        if (failure.kind === "busy" && !source.retried && !pending) {
          // The same request may succeed later: send it once more, when the server asks.
          var wait = Math.min(10, Math.max(0, Number(r.res.headers.get("Retry-After")) || 1));
          failure.message = "The model is busy – trying again in " + wait + " s.";
          retryTimer = setTimeout(function () {
            retryTimer = null;
            if (gen === generation && !inFlight) {
              send(body, headers, { file: source.file, retried: true });
            }
          }, wait * 1000);
        }
        showFailure(failure);
        return;
      }
      showAnswer(r.data, source);
      setStatus("");
    }).catch(function (err) {
      if (gen !== generation || (err && err.name === "AbortError")) {
        return;
      }
      showFailure(describeFailure(err instanceof BadAnswer ? 200 : 0, null, ""));
    }).then(function () {
      if (gen === generation) {
        inFlight = false;
        controller = null;
        if (pending) {
          predict();
          return;
        }
      }
      setBusy();
    });
  }

  function predict() {
    if (timer !== null) {
      clearTimeout(timer);
      timer = null;
    }
    if (!hasInk) {
      setBusy();
      return;
    }
    if (inFlight) {
      pending = true;
      setBusy();
      return;
    }
    send(JSON.stringify({ image: canvas.toDataURL("image/png"), include_input: true }),
      { "Content-Type": "application/json" }, {});
  }

  // The Predict button and Enter: now, without waiting for the throttle.
  function predictNow() {
    if (!hasInk) {
      setStatus(shown === "upload"
        ? "The prediction shown is for the uploaded image; draw a digit to predict a drawing."
        : "Nothing to predict yet: draw a digit or upload an image of one.");
      return;
    }
    predict();
  }

  // The first ink after an upload's answer (or while it is on its way) replaces it.
  function startInk() {
    if (upload.value || shown === "upload" || (!hasInk && inFlight)) {
      forgetRequests();
      resetResults();
      upload.value = "";
    }
    hasInk = true;
    setStatus("");
  }

  // Throttled prediction while drawing: at most one every THROTTLE_MS.
  function schedulePredict() {
    if (timer !== null) {
      return;
    }
    var wait = THROTTLE_MS - (Date.now() - lastSent);
    if (wait <= 0) {
      predict();
    } else {
      timer = setTimeout(function () {
        timer = null;
        predict();
      }, wait);
      setBusy();
    }
  }

  function onPointerDown(ev) {
    if (drawing || (ev.pointerType === "mouse" && ev.button !== 0)) {
      return;
    }
    ev.preventDefault();
    drawing = true;
    pointerId = ev.pointerId;
    if (canvas.setPointerCapture) {
      try { canvas.setPointerCapture(ev.pointerId); } catch (e) { /* ignore */ }
    }
    last = toCanvas(ev);
    startInk();
    dot(last);
    hideKeyboardPen();
  }

  function onPointerMove(ev) {
    if (!drawing || ev.pointerId !== pointerId) {
      return;
    }
    ev.preventDefault();
    var events = typeof ev.getCoalescedEvents === "function" ? ev.getCoalescedEvents() : [];
    if (!events.length) {
      events = [ev];
    }
    events.forEach(function (e) {
      var p = toCanvas(e);
      segment(last, p);
      last = p;
    });
    schedulePredict();
  }

  function onPointerUp(ev) {
    if (!drawing || ev.pointerId !== pointerId) {
      return;
    }
    if (ev.type === "pointerup") {
      var p = toCanvas(ev);
      segment(last, p);
    }
    drawing = false;
    pointerId = null;
    last = null;
    predict();
  }

  // Drop every request in flight or queued: their answers belong to what is being replaced.
  function forgetRequests() {
    generation += 1;
    if (controller) {
      controller.abort();
    }
    controller = null;
    inFlight = false;
    pending = false;
    if (timer !== null) {
      clearTimeout(timer);
      timer = null;
    }
    if (retryTimer !== null) {
      clearTimeout(retryTimer);
      retryTimer = null;
    }
  }

  function clearDrawing() {
    forgetRequests();
    drawing = false;
    pointerId = null;
    last = null;
    hasInk = false;
    setPenDown(false, true);
    ctx.clearRect(0, 0, canvas.width, canvas.height);
    resetResults();
    setStatus("");
    setBusy();
  }

  function clearAll() {
    clearDrawing();
    upload.value = "";
  }

  // ---- The keyboard pen -------------------------------------------------

  function showPen() {
    penMark.style.left = (100 * pen.x / canvas.width) + "%";
    penMark.style.top = (100 * pen.y / canvas.height) + "%";
    penMark.style.width = penMark.style.height = (100 * ctx.lineWidth / canvas.width) + "%";
    penMark.classList.toggle("down", penDown);
  }

  function showKeyboardPen() {
    canvasWrap.classList.add("keyboard");
    showPen();
  }

  function hideKeyboardPen() {
    canvasWrap.classList.remove("keyboard");
  }

  // quiet: no announcement and no prediction (Clear lifts the pen too)
  function setPenDown(down, quiet) {
    if (down === penDown) {
      return;
    }
    penDown = down;
    if (!quiet) {
      penState.textContent = "Keyboard pen: " + (down ? "down – moving it draws" : "up");
    } else if (penState.textContent !== "Keyboard pen: up") {
      penState.textContent = "Keyboard pen: up";
    }
    showPen();
    if (down) {
      startInk();
      dot(pen);
    } else if (!quiet) {
      predict();
    }
  }

  function movePen(dx, dy) {
    var r = ctx.lineWidth / 2;
    var next = {
      x: Math.max(r, Math.min(canvas.width - r, pen.x + dx)),
      y: Math.max(r, Math.min(canvas.height - r, pen.y + dy))
    };
    if (penDown) {
      segment(pen, next);
      schedulePredict();
    }
    pen = next;
    showPen();
  }

  function onCanvasKey(ev) {
    if (ev.altKey || ev.ctrlKey || ev.metaKey) {
      return;
    }
    var step = ev.shiftKey ? PEN_BIG_STEP : PEN_STEP;
    switch (ev.key) {
      case "ArrowLeft": movePen(-step, 0); break;
      case "ArrowRight": movePen(step, 0); break;
      case "ArrowUp": movePen(0, -step); break;
      case "ArrowDown": movePen(0, step); break;
      case " ":
      case "Spacebar":
        if (!ev.repeat) {
          setPenDown(!penDown);
        }
        break;
      case "Enter":
        if (penDown) {
          setPenDown(false);  // lifting it predicts
        } else {
          predictNow();
        }
        break;
      case "Delete":
      case "Backspace":
        clearAll();
        break;
      default:
        return;  // Tab, Escape (handled below) and the rest keep their meaning
    }
    ev.preventDefault();
    showKeyboardPen();
  }

  // ---- Uploads ------------------------------------------------------------

  function onUpload() {
    var file = upload.files && upload.files[0];
    if (!file) {
      return;
    }
    clearDrawing();  // the answer will be the upload's, not a drawing's
    var form = new FormData();
    form.append("image", file, file.name);
    form.append("include_input", "true");
    send(form, undefined, { file: file.name || "upload" });
  }

  canvas.addEventListener("pointerdown", onPointerDown);
  canvas.addEventListener("pointermove", onPointerMove);
  canvas.addEventListener("pointerup", onPointerUp);
  canvas.addEventListener("pointercancel", onPointerUp);
  canvas.addEventListener("lostpointercapture", onPointerUp);
  // Stop the page from scrolling or zooming on touch devices without Pointer Events support.
  canvas.addEventListener("touchstart", function (ev) { ev.preventDefault(); }, { passive: false });
  canvas.addEventListener("contextmenu", function (ev) { ev.preventDefault(); });
  canvas.addEventListener("keydown", onCanvasKey);
  canvas.addEventListener("focus", function () {
    if (canvas.matches && canvas.matches(":focus-visible")) {
      showKeyboardPen();  // reached with Tab: show where the pen is
    }
  });
  canvas.addEventListener("blur", hideKeyboardPen);
  clearButton.addEventListener("click", clearAll);
  predictButton.addEventListener("click", predictNow);
  upload.addEventListener("change", onUpload);
  document.addEventListener("keydown", function (ev) {
    if (ev.key === "Escape") {
      clearAll();
    }
  });
  resetResults();
  showPen();
  loadModel();
})();
