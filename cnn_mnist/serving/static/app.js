/* cnn-mnist front end: draw a digit, POST it to ./predict, show the answer.
 * Vanilla JS, no dependencies, works offline. */
(function () {
  "use strict";

  var THROTTLE_MS = 150;

  var canvas = document.getElementById("canvas");
  var ctx = canvas.getContext("2d");
  var clearButton = document.getElementById("clear");
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
  var servingVersion = null;  // the model version the footer's canary accuracy belongs to
  var modelRequest = false;   // a GET readyz in flight

  // Drawing state.
  var drawing = false;
  var pointerId = null;
  var last = null;
  var hasInk = false;

  // Request state: at most one request in flight; while it runs, newer
  // drawings only set `pending`, and the latest one is sent when it returns.
  var inFlight = false;
  var pending = false;
  var controller = null;
  var generation = 0;      // bumped by Clear: answers for older drawings are dropped
  var lastSent = 0;
  var timer = null;

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
    var busy = inFlight || pending || timer !== null;
    if (busy) {
      result.setAttribute("aria-busy", "true");
    } else {
      result.removeAttribute("aria-busy");
    }
  }

  function setStatus(text, isError) {
    statusLine.textContent = text || "";
    statusLine.classList.toggle("error", !!isError);
    if (isError && !prediction.textContent) {
      confidence.textContent = "No prediction.";
    }
  }

  function resetResults() {
    prediction.textContent = "";
    confidence.textContent = "Draw a digit to start.";
    bars.forEach(function (bar) {
      bar.setAttribute("data-probability", "0");
      bar.classList.remove("top");
      bar.querySelector(".bar-fill").style.width = "0%";
      bar.querySelector(".bar-value").textContent = "0.0%";
    });
    seen.hidden = true;
    seenImage.removeAttribute("src");
  }

  function percent(p) {
    return (100 * p).toFixed(1) + "%";
  }

  function showAnswer(data) {
    var probs = data.probabilities;
    if (!Array.isArray(probs) || probs.length !== 10 || typeof data.digit !== "number") {
      throw new Error("Unexpected answer from the server.");
    }
    bars.forEach(function (bar, i) {
      var p = Number(probs[i]) || 0;
      bar.setAttribute("data-probability", p.toFixed(6));
      bar.classList.toggle("top", i === data.digit);
      bar.querySelector(".bar-fill").style.width = Math.max(0, Math.min(100, 100 * p)) + "%";
      bar.querySelector(".bar-value").textContent = percent(p);
    });
    prediction.textContent = String(data.digit);
    confidence.textContent = percent(Number(probs[data.digit]) || 0) + " confident";
    if (typeof data.input === "string" && data.input.indexOf("data:image/png;base64,") === 0) {
      seenImage.src = data.input;
      seen.hidden = false;
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
    }).catch(function () {
      // The server is unreachable: predictions say so in the status line; the footer keeps its text.
    }).then(function () {
      modelRequest = false;
    });
  }

  function errorMessage(res, data) {
    if (data && typeof data.error === "string" && data.error) {
      return data.error;
    }
    return "The server answered " + res.status + (res.statusText ? " " + res.statusText : "") + ".";
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
    inFlight = true;
    pending = false;
    lastSent = Date.now();
    setBusy();

    var gen = generation;
    controller = typeof AbortController === "function" ? new AbortController() : null;
    var body = JSON.stringify({ image: canvas.toDataURL("image/png"), include_input: true });

    fetch("predict", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: body,
      signal: controller ? controller.signal : undefined
    }).then(function (res) {
      return res.json().then(
        function (data) { return { res: res, data: data }; },
        function () { return { res: res, data: null }; });
    }).then(function (r) {
      if (gen !== generation) {
        return;  // drawing was cleared meanwhile
      }
      if (!r.res.ok || !r.data || r.data.error) {
        setStatus(errorMessage(r.res, r.data), true);
        return;
      }
      showAnswer(r.data);
      setStatus("");
    }).catch(function (err) {
      if (gen !== generation || (err && err.name === "AbortError")) {
        return;
      }
      setStatus(err && err.message && err.message.indexOf("Unexpected") === 0
        ? err.message
        : "Could not reach the server – is it still running?", true);
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
    dot(last);
    hasInk = true;
    setStatus("");
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

  function clearAll() {
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
    drawing = false;
    pointerId = null;
    last = null;
    hasInk = false;
    ctx.clearRect(0, 0, canvas.width, canvas.height);
    resetResults();
    setStatus("");
    setBusy();
  }

  canvas.addEventListener("pointerdown", onPointerDown);
  canvas.addEventListener("pointermove", onPointerMove);
  canvas.addEventListener("pointerup", onPointerUp);
  canvas.addEventListener("pointercancel", onPointerUp);
  canvas.addEventListener("lostpointercapture", onPointerUp);
  // Stop the page from scrolling or zooming on touch devices without Pointer Events support.
  canvas.addEventListener("touchstart", function (ev) { ev.preventDefault(); }, { passive: false });
  canvas.addEventListener("contextmenu", function (ev) { ev.preventDefault(); });
  clearButton.addEventListener("click", clearAll);
  document.addEventListener("keydown", function (ev) {
    if (ev.key === "Escape") {
      clearAll();
    }
  });
  resetResults();
  loadModel();
})();
