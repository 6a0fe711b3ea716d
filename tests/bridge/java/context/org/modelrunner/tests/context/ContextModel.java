package org.modelrunner.tests.context;

import java.io.InputStream;
import java.net.URL;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import java.util.Properties;
import java.util.ServiceLoader;
import java.util.concurrent.ForkJoinPool;
import java.util.concurrent.Future;
import java.util.concurrent.atomic.AtomicReference;

import com.acme.lib.Greeter;
import com.acme.lib.Version;

/**
 * Written the way libraries expect to be used: everything that looks a class, a service or a resource up goes
 * through the thread context class loader (as JAXB, Jackson modules, JDBC drivers and javax.script do).
 * Each rpc answers what it found; "model" stands for this version's own class loader.
 */
public class ContextModel implements AutoCloseable {
    static final String STATIC_CONTEXT = describe(Thread.currentThread().getContextClassLoader());
    private final String constructed;

    public ContextModel(Path artifactDir) {
        constructed = "static=" + STATIC_CONTEXT + " constructor=" + describe(Thread.currentThread().getContextClassLoader())
                + " greeting=" + greetings();
    }

    static String describe(ClassLoader l) {
        return l == ContextModel.class.getClassLoader() ? "model" : String.valueOf(l);
    }

    /** What ServiceLoader.load(Greeter.class) finds: it looks in the context class loader. */
    static String greetings() {
        List<String> out = new ArrayList<>();
        for (Greeter g : ServiceLoader.load(Greeter.class)) out.add(g.greet("model"));
        return out.isEmpty() ? "none" : String.join(",", out);
    }

    public String constructed() { return constructed; }

    public String context() { return describe(Thread.currentThread().getContextClassLoader()); }

    public String service() { return greetings(); }

    public String version() { return Version.value(); }

    /** A resource of a lib/ JAR and the META-INF/services files, through the context loader. */
    public String resource() throws Exception {
        ClassLoader tccl = Thread.currentThread().getContextClassLoader();
        Properties p = new Properties();
        try (InputStream in = tccl.getResourceAsStream("acme/lib/build.properties")) {
            if (in == null) return "missing";
            p.load(in);
        }
        List<URL> services = Collections.list(tccl.getResources("META-INF/services/com.acme.lib.Greeter"));
        return p.getProperty("version") + " services=" + services.size();
    }

    /** Class.forName(name, true, context loader): how plugin registries instantiate named classes. */
    public String forName() throws Exception {
        ClassLoader tccl = Thread.currentThread().getContextClassLoader();
        Class<?> c = Class.forName("com.acme.plugin.HelloGreeter", true, tccl);
        return ((Greeter) c.getDeclaredConstructor().newInstance()).greet("forName");
    }

    /** A thread started by the model inherits the context loader. */
    public String thread() throws Exception {
        AtomicReference<String> seen = new AtomicReference<>();
        Thread t = new Thread(() -> seen.set(describe(Thread.currentThread().getContextClassLoader()) + " " + greetings()));
        t.start();
        t.join();
        return seen.get();
    }

    /** A task on a thread of the JVM's shared ForkJoinPool (waited for without helping, so never run here). */
    public String commonPool() throws Exception {
        Future<String> f = ForkJoinPool.commonPool().submit(() -> describe(Thread.currentThread().getContextClassLoader()));
        while (!f.isDone()) Thread.sleep(1);
        return f.get();
    }

    @Override
    public void close() {
        if (Boolean.getBoolean("modelrunner.tests.context.failClose")) throw new IllegalStateException("cannot release acme");
        System.setProperty("modelrunner.tests.context.closed",
                describe(Thread.currentThread().getContextClassLoader()) + " " + Version.value());
    }
}
