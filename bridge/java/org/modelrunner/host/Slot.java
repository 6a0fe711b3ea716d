package org.modelrunner.host;

import java.io.File;
import java.io.InputStream;
import java.lang.invoke.MethodHandle;
import java.lang.invoke.MethodType;
import java.lang.reflect.Constructor;
import java.lang.reflect.InvocationTargetException;
import java.lang.reflect.Method;
import java.lang.reflect.Modifier;
import java.net.URL;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.Paths;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.TreeSet;
import java.util.zip.ZipFile;

import org.modelrunner.host.Codecs.MsgCodec;

/**
 * One loaded model version: its own class loader (parent: the host's), the model instance, and one compiled
 * binding per rpc. Python holds only this object; model classes never leave the JVM.
 *
 * <p>Whenever model code may run (class initialisation at open, construction and binding, every call, closing)
 * the calling thread's context class loader is this version's loader, restored afterwards: libraries that
 * find their parts through it (ServiceLoader.load(X.class), JAXB, JDBC drivers, ...) see the model's own
 * {@code lib/}, and threads the model starts inherit it.
 *
 * <p>A call with a deadline, and the model's close(), run on a host call thread (Calls): the caller waits at most
 * until the deadline and then gets the deadline error, while the watchdog (Guard) goes on stopping the call. A
 * version opened for inline calls ({@link #setInlineCalls}) runs its timed calls on the caller's own thread instead,
 * with no hand-off (about half the cost of a small call's hand-off on this project's 2-core machine): the watchdog
 * only interrupts such a call at its deadline (a Thread.stop could land on the caller after the call has ended), so
 * a model that ignores interrupts holds its caller until it returns.
 */
public final class Slot {
    static final byte[] EMPTY = new byte[0];
    static final MethodType INVOKER = MethodType.methodType(Object.class, Object[].class);
    static final ClassLoader HOST_LOADER = Slot.class.getClassLoader();
    /** How long a model's close() may run before the watchdog stops it. */
    static final long CLOSE_MILLIS = Long.getLong("modelrunner.closeTimeoutMillis", 10_000L);

    // Not final: close() drops them so a Slot still referenced from Python pins no model class.
    private ModelLoader loader;
    private Class<?> cls;
    private Path artifactDir;
    private Schema schema;
    private final List<Binding> bindings = new ArrayList<>();
    private volatile Binding[] table = new Binding[0];
    private Object instance;
    private boolean instanceBuilt;
    private Properties acumosConfig;
    private boolean acumosLoaded;
    private volatile boolean closed;
    /** Timed calls on the caller's thread, interrupted at their deadline, instead of on a call thread. */
    private volatile boolean inlineCalls;
    /** The model name and version a stuck call is reported under. */
    private final String modelName, modelVersion;

    private Slot(ModelLoader loader, Class<?> cls, Path artifactDir, Schema schema, String modelName, String modelVersion) {
        this.loader = loader; this.cls = cls; this.artifactDir = artifactDir; this.schema = schema;
        this.modelName = modelName; this.modelVersion = modelVersion;
    }

    static Slot open(String className, String artifactDir, String[] jars, String schemaText, ModelOutput.Tag output,
            String name, String version) throws HostException {
        URL[] urls = new URL[jars.length];
        for (int i = 0; i < jars.length; i++) {
            File f = new File(jars[i]);
            if (!f.isFile()) throw new HostException("load", "JAR not found: " + jars[i]);
            try (ZipFile z = new ZipFile(f)) {
                urls[i] = f.toURI().toURL();
            } catch (Exception e) {
                throw new HostException("load", f.getName() + " is not a JAR (zip) file: " + jars[i] + " (" + e.getMessage() + ")");
            }
        }
        Schema schema;
        try {
            schema = Schema.parse(schemaText);
        } catch (RuntimeException e) {
            throw new HostException("load", "bad contract schema: " + e.getMessage());
        }
        Path dir = artifactDir == null ? null : Paths.get(artifactDir);
        ModelLoader loader = new ModelLoader("model:" + className, urls, Host.class.getClassLoader(), dir);
        if (output != null) loader.output(output);   // before any model code runs: its static initialiser may print
        Thread th = Thread.currentThread();
        ClassLoader prev = enter(th, loader);
        try {
            Class<?> c;
            try {
                c = Class.forName(className, true, loader);
            } catch (ClassNotFoundException e) {
                throw new HostException("load", "class " + className + " not found in " + String.join(", ", names(jars)));
            } catch (ExceptionInInitializerError e) {
                Throwable cause = e.getCause() == null ? e : e.getCause();
                throw new HostException("load", "static initialiser of " + className + " threw " + cause, cause, null);
            } catch (LinkageError e) {
                throw new HostException("load", "class " + className + " cannot be loaded: " + e, e, null);
            }
            return new Slot(loader, c, dir, schema, name == null || name.isEmpty() ? className : name,
                    version == null ? "" : version);
        } catch (HostException e) {
            try { loader.close(); } catch (Exception ignored) { }
            throw e;
        } finally {
            th.setContextClassLoader(prev);
        }
    }

    /**
     * Makes {@code l} the thread's context class loader; returns the one to restore. A model loader found there
     * is stale (a call stopped by the watchdog after it ended, before its restore: model code cannot reach a
     * Slot, so calls never nest): it is not restored, or the thread would pin that version's classes.
     */
    static ClassLoader enter(Thread th, ClassLoader l) {
        ClassLoader prev = th.getContextClassLoader();
        if (prev instanceof ModelLoader) prev = HOST_LOADER;
        th.setContextClassLoader(l);
        return prev;
    }

    private static List<String> names(String[] jars) {
        List<String> l = new ArrayList<>();
        for (String j : jars) l.add(new File(j).getName());
        return l;
    }

    /** The model instance: built once with a (Path), (String) or no-arg constructor. */
    private synchronized Object instance() throws HostException {
        if (instanceBuilt) return instance;
        Constructor<?> k = null;
        Object arg = null;
        for (Class<?> t : new Class<?>[] {Path.class, String.class, null}) {
            try {
                k = t == null ? cls.getDeclaredConstructor() : cls.getDeclaredConstructor(t);
                arg = t == Path.class ? artifactDir : t == String.class ? (artifactDir == null ? null : artifactDir.toString()) : null;
                break;
            } catch (NoSuchMethodException e) { k = null; }
        }
        if (k == null || Modifier.isAbstract(cls.getModifiers()))
            throw new HostException("load", "class " + cls.getName() + " has no constructor taking (java.nio.file.Path), (String) or () to build an instance");
        try {
            k.setAccessible(true);
            instance = k.getParameterCount() == 0 ? k.newInstance() : k.newInstance(arg);
            instanceBuilt = true;
            return instance;
        } catch (InvocationTargetException e) {
            Throwable cause = e.getCause();
            String what = Guard.causedByExit(cause) ? "called System.exit" : "threw " + cause;
            throw new HostException("load", "constructor of " + cls.getName() + " " + what, cause, null);
        } catch (ReflectiveOperationException | RuntimeException e) {
            throw new HostException("load", "cannot construct " + cls.getName() + ": " + e, e, null);
        }
    }

    /** modelConfig.properties from the artifact folder, else from inside the model JAR; null when absent. */
    private synchronized Properties acumosConfig() throws HostException {
        if (acumosLoaded) return acumosConfig;
        acumosLoaded = true;
        try {
            Path p = artifactDir == null ? null : artifactDir.resolve("modelConfig.properties");
            InputStream in = null;
            if (p != null && Files.isRegularFile(p)) in = Files.newInputStream(p);
            else {
                URL u = loader.findResource("modelConfig.properties");
                if (u != null) {
                    java.net.URLConnection con = u.openConnection();
                    con.setUseCaches(false); // do not keep the JAR open in the JDK's cache after close()
                    in = con.getInputStream();
                }
            }
            if (in == null) return null;
            try (InputStream s = in) {
                Properties props = new Properties();
                props.load(s);
                acumosConfig = props;
            }
        } catch (Exception e) {
            throw new HostException("load", "cannot read modelConfig.properties: " + e, e, null);
        }
        return acumosConfig;
    }

    static String lowerCamel(String rpc) { return rpc.isEmpty() ? rpc : Character.toLowerCase(rpc.charAt(0)) + rpc.substring(1); }

    private static List<Method> publicMethods(Class<?> c, String name) {
        List<Method> l = new ArrayList<>();
        for (Method m : c.getMethods())
            if (m.getName().equals(name) && !m.isBridge() && !m.isSynthetic() && m.getDeclaringClass() != Object.class) l.add(m);
        l.sort(Comparator.comparingInt(Method::getParameterCount).thenComparing(Method::toGenericString));
        return l;
    }

    private static String methodList(Class<?> c) {
        TreeSet<String> names = new TreeSet<>();
        for (Method m : c.getMethods()) if (m.getDeclaringClass() != Object.class) names.add(m.getName());
        return String.join(", ", names);
    }

    static boolean looksProto(Method m) {
        if (m.getParameterCount() != 1) return false;
        try {
            Method p = m.getParameterTypes()[0].getMethod("parseFrom", byte[].class);
            return Modifier.isStatic(p.getModifiers()) && m.getReturnType().getMethod("toByteArray") != null;
        } catch (NoSuchMethodException e) {
            return false;
        }
    }

    /**
     * Binds rpc {@code rpc} (input/output message full names) to a Java method. {@code method} and {@code convention}
     * are optional overrides ("" = detect). Returns the binding as JSON; throws kind "bind" with the problems.
     */
    public synchronized String bind(String rpc, String method, String convention, String inName, String outName) throws HostException {
        if (closed) throw new HostException("closed", "model is closed");
        Thread th = Thread.currentThread();
        ClassLoader prev = enter(th, loader); // binding builds the instance and initialises model classes
        try {
            return bindHere(rpc, method, convention, inName, outName);
        } finally {
            th.setContextClassLoader(prev);
        }
    }

    private String bindHere(String rpc, String method, String convention, String inName, String outName) throws HostException {
        Schema.Msg in = schema.messages.get(inName), out = schema.messages.get(outName);
        if (in == null || out == null) throw new HostException("load", "rpc " + rpc + ": message types not in schema");
        String name = method == null || method.isEmpty() ? lowerCamel(rpc) : method;
        String conv = convention == null ? "" : convention;
        Binding b = null;
        Properties acu = conv.isEmpty() || conv.equals("acumos") ? acumosConfig() : null;
        List<Method> cands = publicMethods(cls, name);
        if (conv.equals("acumos") || (conv.isEmpty() && acu != null && cands.isEmpty())) {
            // Acumos: the rpc's own method if it takes a File or a String, else modelMethod of modelConfig.properties
            Binder bd = new Binder(schema, rpc);
            Method m = Acumos.pick(cands);
            if (m == null) m = acumosMethod(bd, method, acu);
            if (m != null) b = bindAcumos(bd, m, acu, in, out);
            if (b == null) throw bindError(bd.problems);
        } else {
            if (cands.isEmpty()) {
                Binder bd = new Binder(schema, rpc);
                bd.problem("", "", "no public method '" + name + "' in class " + cls.getName() + " (public methods: " + methodList(cls) + ")");
                throw bindError(bd.problems);
            }
            List<Map<String, String>> reported = null;
            outer:
            for (Method m : cands) {
                List<String> order = new ArrayList<>();
                if (!conv.isEmpty()) order.add(conv);
                else if (looksProto(m)) order.add("proto");
                else {
                    if (acu != null && Acumos.callable(m)) order.add("acumos");
                    if (m.getParameterCount() == 1) order.add("pojo");
                    order.add("params");
                }
                for (String c : order) {
                    Binder bd = new Binder(schema, rpc);
                    Binding x = c.equals("acumos") ? bindAcumos(bd, m, acu, in, out) : tryBind(bd, m, c, in, out);
                    if (x != null && bd.problems.isEmpty()) { b = x; break outer; }
                    boolean preferred = reported == null && (order.size() == 1 || c.equals(
                            m.getParameterCount() == 1 && Props.isPojo(m.getParameterTypes()[0]) ? "pojo" : "params"));
                    if (preferred || reported == null && c.equals(order.get(order.size() - 1))) reported = bd.problems;
                }
            }
            if (b == null) throw bindError(reported);
        }
        b.index = bindings.size();
        b.rpc = rpc;
        b.inMsg = in;
        b.outMsg = out;
        b.json = ProtoJson.supports(in) && ProtoJson.supports(out);
        bindings.add(b);
        table = bindings.toArray(new Binding[0]);
        Map<String, Object> info = new LinkedHashMap<>();
        info.put("index", b.index);
        info.put("json", b.json);
        info.put("rpc", rpc);
        info.put("java_class", b.javaClass);
        info.put("java_method", b.javaMethod);
        info.put("convention", b.convention);
        info.put("static", b.isStatic);
        info.put("signature", b.signature);
        return Json.write(info);
    }

    private static HostException bindError(List<Map<String, String>> problems) {
        StringBuilder sb = new StringBuilder();
        for (Map<String, String> p : problems) {
            if (sb.length() > 0) sb.append("; ");
            sb.append("rpc ").append(p.get("rpc"));
            if (!p.get("message").isEmpty()) sb.append(", message ").append(p.get("message"));
            if (!p.get("field").isEmpty()) sb.append(", field ").append(p.get("field"));
            sb.append(": ").append(p.get("reason"));
        }
        return new HostException("bind", sb.toString(), null, Json.write(problems));
    }

    private MethodHandle invoker(Method m) throws HostException {
        try {
            m.setAccessible(true);
            MethodHandle h = Binder.LOOKUP.unreflect(m);
            if (!Modifier.isStatic(m.getModifiers())) h = h.bindTo(instance());
            return h.asSpreader(Object[].class, m.getParameterCount()).asType(INVOKER);
        } catch (IllegalAccessException | RuntimeException e) {
            throw new HostException("load", "cannot access method " + m + ": " + e, e, null);
        }
    }

    private Binding tryBind(Binder bd, Method m, String conv, Schema.Msg in, Schema.Msg out) throws HostException {
        Binding b = new Binding(m, conv, loader);
        switch (conv) {
            case "proto": {
                if (m.getParameterCount() != 1) { bd.problem(in.name, "", "proto-native method " + m.getName() + " must take one message"); return null; }
                Class<?> p = m.getParameterTypes()[0], r = m.getReturnType();
                try {
                    Method parse = p.getMethod("parseFrom", byte[].class);
                    Method ser = r.getMethod("toByteArray");
                    checkDescriptor(bd, p, in);
                    checkDescriptor(bd, r, out);
                    if (!bd.problems.isEmpty()) return null;
                    b.parseFrom = Binder.LOOKUP.unreflect(parse).asType(MethodType.methodType(Object.class, byte[].class));
                    b.toByteArray = Binder.LOOKUP.unreflect(ser).asType(MethodType.methodType(byte[].class, Object.class));
                } catch (NoSuchMethodException | IllegalAccessException e) {
                    bd.problem(in.name, "", "method " + m.getName() + " is not proto-native: " + p.getName()
                            + ".parseFrom(byte[]) or " + r.getName() + ".toByteArray() missing");
                    return null;
                }
                break;
            }
            case "pojo": {
                if (m.getParameterCount() != 1) { bd.problem(in.name, "", "method " + m.getName() + " must take one parameter for convention pojo"); return null; }
                b.in = bd.message(in, m.getGenericParameterTypes()[0], true);
                break;
            }
            case "params": {
                b.in = bd.params(in, m);
                b.inArgs = true;
                break;
            }
            default:
                bd.problem("", "", "unknown convention '" + conv + "' (use pojo, params, proto or acumos)");
                return null;
        }
        if (!conv.equals("proto") && m.getReturnType() != void.class) b.out = bd.message(out, m.getGenericReturnType(), false);
        if (!bd.problems.isEmpty()) return null;
        b.invoker = invoker(m);
        return b;
    }

    private static void checkDescriptor(Binder bd, Class<?> c, Schema.Msg expected) {
        try {
            Object d = c.getMethod("getDescriptor").invoke(null);
            String full = (String) d.getClass().getMethod("getFullName").invoke(d);
            if (!full.equals(expected.name))
                bd.problem(expected.name, "", "Java class " + c.getName() + " is proto message " + full + ", the contract expects " + expected.name);
        } catch (ReflectiveOperationException | RuntimeException e) {
            // no descriptor accessor: accept, the bytes are checked at call time by parseFrom
        }
    }

    /** The method named by modelConfig.properties (modelClassName, modelMethod) or the override. */
    private Method acumosMethod(Binder bd, String override, Properties acu) throws HostException {
        if (acu == null) {
            bd.problem("", "", "convention acumos needs a modelConfig.properties (in the artifact folder or the JAR)");
            return null;
        }
        String className = acu.getProperty("modelClassName", cls.getName()).trim();
        String name = override != null && !override.isEmpty() ? override : acu.getProperty("modelMethod", "").trim();
        Class<?> c;
        try {
            c = className.equals(cls.getName()) ? cls : Class.forName(className, true, loader);
        } catch (ClassNotFoundException | LinkageError e) {
            throw new HostException("load", "modelClassName " + className + " (modelConfig.properties) cannot be loaded: " + e, e, null);
        }
        Method x = Acumos.pick(publicMethods(c, name));
        if (x != null) return x;
        bd.problem("", "", "no public method " + name + "(String) or " + name + "(java.io.File) in class " + className + " (modelConfig.properties)");
        return null;
    }

    private Binding bindAcumos(Binder bd, Method m, Properties acu, Schema.Msg in, Schema.Msg out) throws HostException {
        if (!Modifier.isStatic(m.getModifiers()) && m.getDeclaringClass() != cls && !m.getDeclaringClass().isAssignableFrom(cls)) {
            bd.problem("", "", "Acumos method " + m.getDeclaringClass().getName() + "." + m.getName() + " must be static");
            return null;
        }
        Binding b = new Binding(m, "acumos", loader);
        Acumos a = new Acumos();
        String wrong = a.configure(acu, m, bd, in, out);
        if (wrong != null) bd.problem("", "", wrong);
        if (!bd.problems.isEmpty()) return null;
        b.acumos = a;
        b.invoker = invoker(m);
        return b;
    }

    /**
     * Calls binding {@code index}: request bytes in, response bytes out. {@code timeoutMillis <= 0}: no deadline, the
     * model runs on the caller's thread; else on a call thread, and the caller gets the deadline error at the
     * deadline at the latest.
     */
    public byte[] call(int index, byte[] request, long timeoutMillis) throws HostException {
        Binding b;
        Binding[] t = table;
        if (closed || index < 0 || index >= t.length) throw new HostException("closed", closed ? "model is closed" : "no binding " + index);
        b = t[index];
        if (timeoutMillis > 0 && !inlineCalls) {
            long deadline = System.nanoTime() + timeoutMillis * 1_000_000L;
            TimedCall c = new TimedCall(this, b, request, timeoutMillis, deadline);
            if (!Calls.runUntil(c, deadline))
                throw new HostException("deadline", b.javaMethod + " overran its deadline of " + timeoutMillis
                        + " ms; the call was abandoned and is being stopped", new Calls.StillRunning(c),
                        "{\"timeout_ms\":" + timeoutMillis + ",\"abandoned\":true}");
            if (c.error != null) throw c.error;
            return c.result;
        }
        Thread th = Thread.currentThread();
        ClassLoader prev = enter(th, b.loader);
        try {
            if (timeoutMillis <= 0) return run(this, b, request, 0, 0, null);
            return run(this, b, request, timeoutMillis, System.nanoTime() + timeoutMillis * 1_000_000L, null);
        } finally {
            th.setContextClassLoader(prev);
        }
    }

    /** Timed calls of this version from now on run inline on their caller's thread (see the class comment). */
    public void setInlineCalls(boolean inline) { inlineCalls = inline; }

    /**
     * As {@link #call}, with the request in proto3 JSON when {@code jsonIn} and the answer in proto3 JSON when
     * {@code jsonOut} (ProtoJson: what the Python path gives); JSON nested deeper than {@code maxJsonDepth} is
     * refused. A bad request is kind "input", naming the field; an answer that is not the output message, "model".
     */
    public byte[] callJson(int index, byte[] request, boolean jsonIn, boolean jsonOut, long timeoutMillis, int maxJsonDepth)
            throws HostException {
        Binding[] t = table;
        if (closed || index < 0 || index >= t.length) throw new HostException("closed", closed ? "model is closed" : "no binding " + index);
        Binding b = t[index];
        if (!b.json) throw new HostException("input", "rpc " + b.rpc + " has messages the host's JSON mapping leaves to Python");
        byte[] wire = jsonIn ? ProtoJson.toWire(b.inMsg, request, maxJsonDepth) : request;
        byte[] answer = call(index, wire, timeoutMillis);
        return jsonOut ? ProtoJson.toJson(b.outMsg, answer) : answer;
    }

    /** A timed call, run on a call thread with the version's loader as its context loader. */
    private static final class TimedCall extends Calls.Task {
        final Slot slot;
        final Binding b;
        final byte[] request;
        final long timeoutMillis, deadline;
        byte[] result;
        HostException error;

        TimedCall(Slot slot, Binding b, byte[] request, long timeoutMillis, long deadline) {
            this.slot = slot; this.b = b; this.request = request; this.timeoutMillis = timeoutMillis; this.deadline = deadline;
        }

        @Override void run() {
            Thread th = Thread.currentThread();
            ClassLoader prev = enter(th, b.loader);
            try {
                result = Slot.run(slot, b, request, timeoutMillis, deadline, this);
            } catch (HostException e) {
                error = e;
            } finally {
                th.setContextClassLoader(prev);
            }
        }

        @Override void failed(Throwable e) {
            retire = true;
            if (error == null && result == null) error = new HostException("model", b.javaMethod + " failed: " + e, e, null);
        }
    }

    /**
     * Runs binding {@code b} on this thread; timed when {@code timeoutMillis > 0}. {@code task}: the timed call this
     * runs for on a call thread, or null on the caller's own thread (untimed, or an inline timed call, which the
     * watchdog only interrupts).
     */
    private static byte[] run(Slot slot, Binding b, byte[] request, long timeoutMillis, long deadline, TimedCall task)
            throws HostException {
        Guard.Control ctl = Guard.CONTROL.get();
        ctl.exitAttempted = false;
        boolean timed = timeoutMillis > 0;
        boolean timedOut = false;
        try {
            byte[] r;
            if (timed) {
                ctl.begin(deadline, slot.modelName, slot.modelVersion, b.rpc, b.qualifiedMethod, task == null);
                try { r = b.invoke(request); } finally { timedOut = ctl.end(); if (task != null) task.retire |= timedOut; }
            } else {
                r = b.invoke(request);
            }
            if (ctl.exitAttempted) throw exitError(b, null, ctl.exitStatus);
            if (timedOut) throw deadlineError(b, timeoutMillis, null);
            return r;
        } catch (HostException e) {
            throw e;
        } catch (Throwable e) {
            if (timed) { timedOut |= ctl.end(); if (task != null) task.retire |= timedOut; }
            if (ctl.exitAttempted || Guard.causedByExit(e)) throw exitError(b, e, ctl.exitStatus);
            if (timedOut) throw deadlineError(b, timeoutMillis, e);
            if (e instanceof Wire.WireException) throw new HostException("input", e.getMessage(), null, null);
            if (e instanceof Binding.OutputError)
                throw new HostException("model", "invalid result from " + b.javaMethod + ": " + e.getCause(), e.getCause(), null);
            throw new HostException("model", b.javaMethod + " threw " + e, e, null);
        }
    }

    private static HostException exitError(Binding b, Throwable e, int status) {
        return new HostException("exit", b.javaMethod + " called System.exit/Runtime.halt(" + status + "); the call failed and the process keeps serving",
                e, "{\"status\":" + status + "}");
    }

    private static HostException deadlineError(Binding b, long timeoutMillis, Throwable e) {
        return new HostException("deadline", b.javaMethod + " overran its deadline of " + timeoutMillis + " ms and was stopped",
                e, "{\"timeout_ms\":" + timeoutMillis + "}");
    }

    public int size() { return table.length; }

    public String className() { return cls == null ? "" : cls.getName(); }

    /**
     * Closes the model instance when it is {@code AutoCloseable} (on a call thread under the watchdog; the caller
     * waits at most CLOSE_MILLIS), then releases the class loader, the JAR files and the native library copies;
     * calls after this fail with kind "closed". Returns "" or what went wrong in the model's close() (the slot is
     * closed either way).
     */
    public synchronized String close() {
        if (closed) return "";
        closed = true;
        table = new Binding[0];
        bindings.clear();
        Object inst = instance;
        instance = null;
        acumosConfig = null;
        String problem = "";
        if (inst instanceof AutoCloseable) problem = closeInstance((AutoCloseable) inst);
        try { loader.close(); } catch (Exception ignored) { }
        loader = null;
        cls = null;
        schema = null;
        artifactDir = null;
        return problem;
    }

    private String closeInstance(AutoCloseable inst) {
        String what = cls.getName() + ".close()";
        long deadline = System.nanoTime() + CLOSE_MILLIS * 1_000_000L;
        CloseCall c = new CloseCall(inst, loader, deadline, modelName, modelVersion, cls.getName() + ".close");
        if (!Calls.runUntil(c, deadline))
            return what + " overran " + CLOSE_MILLIS + " ms and was abandoned (it is being stopped; reported as stuck while it runs)";
        if (c.exit) return what + " called System.exit/Runtime.halt: blocked";
        if (c.timedOut) return what + " overran " + CLOSE_MILLIS + " ms and was stopped";
        return c.err == null ? "" : what + " threw " + HostException.stackOf(c.err);
    }

    /** The model's close(), run on a call thread with the version's loader as its context loader. */
    private static final class CloseCall extends Calls.Task {
        final AutoCloseable inst;
        final ClassLoader loader;
        final long deadline;
        final String model, version, javaMethod;
        Throwable err;
        boolean timedOut, exit;

        CloseCall(AutoCloseable inst, ClassLoader loader, long deadline, String model, String version, String javaMethod) {
            this.inst = inst; this.loader = loader; this.deadline = deadline;
            this.model = model; this.version = version; this.javaMethod = javaMethod;
        }

        @Override void run() {
            Thread th = Thread.currentThread();
            ClassLoader prev = enter(th, loader);
            Guard.Control ctl = Guard.CONTROL.get();
            ctl.exitAttempted = false;
            try {
                ctl.begin(deadline, model, version, "close", javaMethod, false);
                try {
                    inst.close();
                } catch (Throwable e) {
                    err = e;
                } finally {
                    timedOut = ctl.end();
                }
            } finally {
                retire = timedOut;
                exit = ctl.exitAttempted || Guard.causedByExit(err);
                th.setContextClassLoader(prev);
            }
        }

        @Override void failed(Throwable e) {
            if (err == null) err = e;
            retire = true;
        }
    }

    public boolean isClosed() { return closed; }

    // ------------------------------------------------------------------ bindings

    static final class Binding {
        int index;
        String rpc = "";
        final String javaClass, javaMethod, convention, signature, qualifiedMethod;
        final boolean isStatic;
        final ClassLoader loader;         // the version's loader: the context loader during the call
        MethodHandle invoker;             // (Object[])Object
        MsgCodec in, out;
        /** The rpc's input and output messages; whether ProtoJson maps both. */
        Schema.Msg inMsg, outMsg;
        boolean json;
        boolean inArgs;
        MethodHandle parseFrom, toByteArray;
        Acumos acumos;
        volatile int outHint = 64;

        Binding(Method m, String convention, ClassLoader loader) {
            this.loader = loader;
            this.javaClass = m.getDeclaringClass().getName();
            this.javaMethod = m.getName();
            this.qualifiedMethod = javaClass + "." + javaMethod;
            this.convention = convention;
            this.signature = m.toGenericString();
            this.isStatic = Modifier.isStatic(m.getModifiers());
        }

        /** Wraps a failure while encoding the model's result (not the model's own exception). */
        static final class OutputError extends RuntimeException {
            private static final long serialVersionUID = 1L;
            OutputError(Throwable cause) { super(cause); }
        }

        byte[] invoke(byte[] req) throws Throwable {
            if (parseFrom != null) {
                Object msg;
                try {
                    msg = (Object) parseFrom.invokeExact(req);
                } catch (Error e) {
                    throw e; // e.g. the watchdog stopping an overrunning call
                } catch (Throwable e) {
                    // InvalidProtocolBufferException: the caller's bytes, not the model, are at fault
                    throw new Wire.WireException(String.valueOf(e.getMessage()));
                }
                Object r = (Object) invoker.invokeExact(new Object[] {msg});
                return r == null ? EMPTY : (byte[]) toByteArray.invokeExact(r);
            }
            if (acumos != null) return acumos.call(invoker, req);
            Object[] args;
            if (in == null) args = new Object[0];
            else {
                Wire.In wi = new Wire.In(req);
                args = inArgs ? (Object[]) in.read(wi, req.length) : new Object[] {in.read(wi, req.length)};
            }
            Object r = (Object) invoker.invokeExact(args);
            if (out == null || r == null) return EMPTY;
            Wire.Out o = new Wire.Out(outHint);
            try {
                out.write(r, o);
            } catch (RuntimeException e) {
                throw new OutputError(e);
            }
            if (o.pos > outHint) outHint = Math.min(o.pos + 16, 1 << 20);
            return o.toByteArray();
        }
    }
}
