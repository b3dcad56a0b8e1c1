// The stereo viewer: one WebGL program draws a photo or video frame's two eyes as anaglyph, one
// eye (wiggle, and each eye of a WebXR session), cross-eye, or a left/right split. In a headset the
// frame is a virtual screen (a textured quad) in front of the viewer, each eye seeing its half.
"use strict";

const Viewer = (() => {
  const MODES = { anaglyph: 0, eye: 1, crosseye: 2, slider: 3, flat: 4 };
  const MAX_CANVAS = 1600;
  // Where each eye is in the frame (u, v, width, height), per layout; v grows downwards.
  const EYES = {
    sbs: [[0, 0, .5, 1], [.5, 0, .5, 1]], hsbs: [[0, 0, .5, 1], [.5, 0, .5, 1]],
    crosseye: [[.5, 0, .5, 1], [0, 0, .5, 1]],
    tb: [[0, 0, 1, .5], [0, .5, 1, .5]], htb: [[0, 0, 1, .5], [0, .5, 1, .5]],
    "2d": [[0, 0, 1, 1], [0, 0, 1, 1]],
  };
  // Width / height of one eye as shown, from the frame's size (half layouts are squeezed).
  const EYE_ASPECT = {
    sbs: (w, h) => w / 2 / h, crosseye: (w, h) => w / 2 / h, hsbs: (w, h) => w / h,
    tb: (w, h) => w / (h / 2), htb: (w, h) => w / h, "2d": (w, h) => w / h,
  };
  const VERTEX = `
    attribute vec2 corner; uniform mat4 transform; varying vec2 uv;
    void main() { uv = vec2(corner.x * .5 + .5, .5 - corner.y * .5); gl_Position = transform * vec4(corner, 0., 1.); }`;
  const FRAGMENT = `
    precision mediump float;
    uniform sampler2D frame; uniform vec4 leftEye, rightEye; uniform int mode, eye; uniform float split;
    varying vec2 uv;
    vec4 eyeAt(vec4 rect, vec2 at) { return texture2D(frame, rect.xy + at * rect.zw); }
    void main() {
      if (mode == 0) {  // red from the left eye, green and blue (cyan) from the right
        gl_FragColor = vec4(eyeAt(leftEye, uv).r, eyeAt(rightEye, uv).gb, 1.);
      } else if (mode == 1) {
        gl_FragColor = eyeAt(eye == 0 ? leftEye : rightEye, uv);
      } else if (mode == 2) {  // right eye on the left, for crossed eyes
        gl_FragColor = uv.x < .5 ? eyeAt(rightEye, vec2(uv.x * 2., uv.y)) : eyeAt(leftEye, vec2(uv.x * 2. - 1., uv.y));
      } else if (mode == 3) {
        gl_FragColor = abs(uv.x - split) < .002 ? vec4(1., 1., 0., 1.) : eyeAt(uv.x < split ? leftEye : rightEye, uv);
      } else {
        gl_FragColor = texture2D(frame, uv);
      }
    }`;
  const IDENTITY = [1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1];

  function multiply(a, b) {  // column-major 4x4, as WebGL and WebXR give them
    const out = new Array(16).fill(0);
    for (let column = 0; column < 4; column++)
      for (let row = 0; row < 4; row++)
        for (let k = 0; k < 4; k++) out[column * 4 + row] += a[k * 4 + row] * b[column * 4 + k];
    return out;
  }

  class StereoView {
    constructor(canvas) {
      this.canvas = canvas;
      // xrCompatible: the context can draw a WebXR session's views (no makeXRCompatible later)
      const gl = canvas.getContext("webgl", { preserveDrawingBuffer: true, xrCompatible: true });
      if (!gl) throw new Error("this browser has no WebGL");
      this.gl = gl;
      const program = gl.createProgram();
      for (const [type, source] of [[gl.VERTEX_SHADER, VERTEX], [gl.FRAGMENT_SHADER, FRAGMENT]]) {
        const shader = gl.createShader(type);
        gl.shaderSource(shader, source);
        gl.compileShader(shader);
        if (!gl.getShaderParameter(shader, gl.COMPILE_STATUS)) throw new Error(gl.getShaderInfoLog(shader));
        gl.attachShader(program, shader);
      }
      gl.linkProgram(program);
      gl.useProgram(program);
      this.at = name => gl.getUniformLocation(program, name);
      gl.bindBuffer(gl.ARRAY_BUFFER, gl.createBuffer());
      gl.bufferData(gl.ARRAY_BUFFER, new Float32Array([-1, -1, 1, -1, -1, 1, 1, 1]), gl.STATIC_DRAW);
      const corner = gl.getAttribLocation(program, "corner");
      gl.enableVertexAttribArray(corner);
      gl.vertexAttribPointer(corner, 2, gl.FLOAT, false, 0, 0);
      gl.bindTexture(gl.TEXTURE_2D, gl.createTexture());
      for (const [key, value] of [[gl.TEXTURE_MIN_FILTER, gl.LINEAR], [gl.TEXTURE_MAG_FILTER, gl.LINEAR],
                                  [gl.TEXTURE_WRAP_S, gl.CLAMP_TO_EDGE], [gl.TEXTURE_WRAP_T, gl.CLAMP_TO_EDGE]])
        gl.texParameteri(gl.TEXTURE_2D, key, value);
      this.mode = "anaglyph";
      this.split = 0.5;
      this.wiggleEye = 0;
      this.source = null;
      this.layout = "sbs";
      this.screen = { width: 2, distance: 2.5 };  // metres, in a headset
      this.xr = null;
      setInterval(() => { this.wiggleEye = 1 - this.wiggleEye; if (this.mode === "wiggle") this.draw(); }, 140);
      const loop = () => { if (this.source instanceof HTMLVideoElement && !this.xr) this.draw(); requestAnimationFrame(loop); };
      requestAnimationFrame(loop);
    }

    show(source, layout) {  // an <img> or <video> that has loaded
      this.source = source;
      this.layout = EYES[layout] ? layout : "2d";
      this.draw();
    }

    size() {
      const width = this.source.videoWidth || this.source.naturalWidth, height = this.source.videoHeight || this.source.naturalHeight;
      return [width, height, EYE_ASPECT[this.layout](width, height)];
    }

    upload() {
      const gl = this.gl;
      gl.texImage2D(gl.TEXTURE_2D, 0, gl.RGBA, gl.RGBA, gl.UNSIGNED_BYTE, this.source);
      const [left, right] = EYES[this.layout];
      gl.uniform4fv(this.at("leftEye"), left);
      gl.uniform4fv(this.at("rightEye"), right);
      gl.uniform1f(this.at("split"), this.split);
    }

    draw() {
      if (!this.source || this.xr) return;
      const gl = this.gl, [width, height, aspect] = this.size();
      const flat = this.mode === "flat";
      let eyeHeight = flat ? height : (this.layout.startsWith("t") && this.layout !== "2d" ? height / 2 : height);
      let canvasWidth = flat ? width : Math.round(eyeHeight * aspect) * (this.mode === "crosseye" ? 2 : 1);
      const scale = Math.min(1, MAX_CANVAS / canvasWidth);
      this.canvas.width = Math.round(canvasWidth * scale);
      this.canvas.height = Math.round(eyeHeight * scale);
      gl.bindFramebuffer(gl.FRAMEBUFFER, null);
      gl.viewport(0, 0, this.canvas.width, this.canvas.height);
      this.upload();
      const mode = this.mode === "wiggle" ? "eye" : this.mode;
      gl.uniform1i(this.at("mode"), MODES[mode]);
      gl.uniform1i(this.at("eye"), this.wiggleEye);
      gl.uniformMatrix4fv(this.at("transform"), false, IDENTITY);
      gl.drawArrays(gl.TRIANGLE_STRIP, 0, 4);
    }

    // --- WebXR: the frame on a virtual screen, each eye its own half ---------------------------
    static async vrSupported() {
      return !!(navigator.xr && await navigator.xr.isSessionSupported("immersive-vr").catch(() => false));
    }

    async enterVR(onEnd) {
      const gl = this.gl;
      const session = await navigator.xr.requestSession("immersive-vr");
      session.updateRenderState({ baseLayer: new XRWebGLLayer(session, gl) });
      const space = await session.requestReferenceSpace("local");
      this.xr = session;
      document.body.dataset.xr = "presenting";
      session.addEventListener("end", () => { this.xr = null; delete document.body.dataset.xr; this.draw(); onEnd && onEnd(); });
      const frame = (time, xrFrame) => {
        if (this.xr !== session) return;
        session.requestAnimationFrame(frame);
        const pose = xrFrame.getViewerPose(space);
        if (!pose || !this.source) return;
        const layer = session.renderState.baseLayer;
        gl.bindFramebuffer(gl.FRAMEBUFFER, layer.framebuffer);
        gl.clearColor(0.05, 0.05, 0.06, 1);
        gl.clear(gl.COLOR_BUFFER_BIT);
        this.upload();
        const aspect = this.size()[2], half = this.screen.width / 2;
        // The screen: a quad `width` metres wide at `distance` in front of where the session began.
        const model = [half, 0, 0, 0, 0, half / aspect, 0, 0, 0, 0, 1, 0, 0, 0, -this.screen.distance, 1];
        gl.uniform1i(this.at("mode"), MODES.eye);
        for (const view of pose.views) {
          const viewport = layer.getViewport(view);
          gl.viewport(viewport.x, viewport.y, viewport.width, viewport.height);
          gl.uniform1i(this.at("eye"), view.eye === "right" ? 1 : 0);
          const transform = multiply(view.projectionMatrix, multiply(view.transform.inverse.matrix, model));
          gl.uniformMatrix4fv(this.at("transform"), false, transform);
          gl.drawArrays(gl.TRIANGLE_STRIP, 0, 4);
        }
      };
      session.requestAnimationFrame(frame);
      return session;
    }
  }
  return { StereoView };
})();
